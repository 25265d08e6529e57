#include "config.h"

#include "karg.h"
#include "errors.h"

#include <string.h>

gboolean
karg_validate (const char *karg, GError **error)
{
  if (karg == NULL || karg[0] == '\0')
    return throw_error (error, STAGEHAND_ERROR_INVALID, "empty kernel argument");

  /* Control characters first, over the whole argument: the messages below
   * quote it, and a quoted newline would split the one-line error. */
  for (const guchar *p = (const guchar *)karg; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return throw_error (error, STAGEHAND_ERROR_INVALID,
                          "kernel argument contains control character 0x%02x; it would inject "
                          "lines into the boot entry",
                          *p);
  /* Entry files and the origin file are UTF-8 text. */
  if (!g_utf8_validate (karg, -1, NULL))
    return throw_error (error, STAGEHAND_ERROR_INVALID, "kernel argument is not valid UTF-8");

  gboolean in_quotes = FALSE;
  for (const guchar *p = (const guchar *)karg; *p; p++)
    {
      if (*p == '"')
        in_quotes = !in_quotes;
      else if (*p == ' ' && !in_quotes)
        return throw_error (error, STAGEHAND_ERROR_INVALID,
                            "kernel argument \"%s\" contains a space outside double quotes; pass "
                            "each argument as its own --karg",
                            karg);
    }
  if (in_quotes)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "kernel argument \"%s\" has an unbalanced double quote", karg);

  g_autofree char *key = karg_key (karg);
  if (strcmp (key, KARG_DEPLOYMENT_KEY) == 0)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "kernel argument \"%s\" is reserved: stagehand sets %s= itself", karg,
                        KARG_DEPLOYMENT_KEY);
  return TRUE;
}

char **
kargs_split (const char *options)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  const char *p = options ? options : "";
  while (*p)
    {
      while (g_ascii_isspace (*p))
        p++;
      if (*p == '\0')
        break;
      const char *start = p;
      gboolean in_quotes = FALSE;
      while (*p && (in_quotes || !g_ascii_isspace (*p)))
        {
          if (*p == '"')
            in_quotes = !in_quotes;
          p++;
        }
      g_ptr_array_add (out, g_strndup (start, p - start));
    }
  g_ptr_array_add (out, NULL);
  return (char **)g_ptr_array_free (g_steal_pointer (&out), FALSE);
}

char *
karg_key (const char *karg)
{
  /* The kernel strips double quotes around a whole argument, so
   * "stagehand=/x" is the key stagehand, not "stagehand. */
  if (karg[0] == '"')
    karg++;
  gsize len = strcspn (karg, "=\"");
  return g_strndup (karg, len);
}

static gboolean
strv_has_key (char *const *kargs, const char *key)
{
  for (char *const *k = kargs; k && *k; k++)
    {
      g_autofree char *kk = karg_key (*k);
      if (strcmp (kk, key) == 0)
        return TRUE;
    }
  return FALSE;
}

char **
kargs_amend (char *const *base, char *const *amend)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  for (char *const *k = base; k && *k; k++)
    {
      g_autofree char *key = karg_key (*k);
      if (strcmp (key, KARG_DEPLOYMENT_KEY) == 0 || strv_has_key (amend, key))
        continue;
      g_ptr_array_add (out, g_strdup (*k));
    }
  for (char *const *k = amend; k && *k; k++)
    g_ptr_array_add (out, g_strdup (*k));
  g_ptr_array_add (out, NULL);
  return (char **)g_ptr_array_free (g_steal_pointer (&out), FALSE);
}

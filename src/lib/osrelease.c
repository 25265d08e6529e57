#include "config.h"

#include "osrelease.h"
#include "deployment-karg.h"
#include "errors.h"
#include "fsutil.h"

#include <string.h>

void
os_release_free (OsRelease *osr)
{
  if (osr == NULL)
    return;
  g_free (osr->id);
  g_free (osr->pretty_name);
  g_free (osr->version_id);
  g_free (osr->version);
  g_free (osr);
}

gboolean
os_name_is_valid (const char *name)
{
  /* The initramfs root setup checks stagehand= with the same rule. */
  return deployment_os_name_is_valid (name);
}

/* Unquotes one os-release value: shell-like single or double quotes, with
 * backslash escapes inside double quotes and outside quotes. */
static char *
unquote_value (const char *raw)
{
  GString *out = g_string_new (NULL);
  char quote = 0;
  for (const char *p = raw; *p; p++)
    {
      if (quote == 0 && (*p == '"' || *p == '\''))
        quote = *p;
      else if (quote != 0 && *p == quote)
        quote = 0;
      else if (*p == '\\' && quote != '\'' && p[1] != '\0')
        g_string_append_c (out, *++p);
      else
        g_string_append_c (out, *p);
    }
  return g_string_free (out, FALSE);
}

gboolean
os_release_parse (const char *contents, const char *origin, OsRelease **ret_osr, GError **error)
{
  g_autoptr (GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_autofree char *line = g_strstrip (g_strdup (*l));
      if (line[0] == '\0' || line[0] == '#')
        continue;
      const char *eq = strchr (line, '=');
      if (eq == NULL || eq == line)
        continue; /* os-release(5): lines that are not assignments are ignored */
      g_hash_table_insert (vars, g_strndup (line, eq - line), unquote_value (eq + 1));
    }

  g_autoptr (OsRelease) osr = g_new0 (OsRelease, 1);
  const char *id = g_hash_table_lookup (vars, "ID");
  osr->id = g_strdup (id && *id ? id : "linux");
  if (!os_name_is_valid (osr->id))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "%s: ID=\"%s\" is not a valid os name (allowed: a-z 0-9 . _ -)", origin,
                        osr->id);
  osr->version_id = g_strdup (g_hash_table_lookup (vars, "VERSION_ID"));
  osr->version = g_strdup (g_hash_table_lookup (vars, "VERSION"));
  const char *pretty = g_hash_table_lookup (vars, "PRETTY_NAME");
  const char *name = g_hash_table_lookup (vars, "NAME");
  if (pretty && *pretty)
    osr->pretty_name = g_strdup (pretty);
  else if (name && *name)
    osr->pretty_name
        = osr->version ? g_strdup_printf ("%s %s", name, osr->version) : g_strdup (name);
  else
    osr->pretty_name = g_strdup ("Linux");

  /* The title and version end up on single lines of a boot entry and in
   * the origin file, which is UTF-8 text: os-release(5) says UTF-8, but an
   * image that is not must not make its own origin unreadable. */
  char **single_line[] = { &osr->pretty_name, &osr->version, &osr->version_id };
  for (guint i = 0; i < G_N_ELEMENTS (single_line); i++)
    {
      if (*single_line[i] == NULL)
        continue;
      char *valid = g_utf8_make_valid (*single_line[i], -1);
      g_free (*single_line[i]);
      *single_line[i] = valid;
      for (char *p = valid; *p; p++)
        if (g_ascii_iscntrl (*p))
          *p = ' ';
    }

  *ret_osr = g_steal_pointer (&osr);
  return TRUE;
}

gboolean
os_release_load (int tree_dfd, OsRelease **ret_osr, GError **error)
{
  static const char *const candidates[] = { "usr/lib/os-release", "etc/os-release" };
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      g_autofree char *contents = NULL;
      /* As the image sees it: os-release is often a symlink (etc/ to usr/lib/,
       * or usr/lib/ to a variant file), never one that leaves the image. */
      if (!fs_read_file_in_root_optional (tree_dfd, candidates[i], FS_READ_MAX_SMALL, &contents,
                                          NULL, error))
        return prefix_error (error, "reading image os-release: ");
      if (contents != NULL)
        return os_release_parse (contents, candidates[i], ret_osr, error);
    }
  return throw_error (error, STAGEHAND_ERROR_INVALID,
                      "image has no usr/lib/os-release or etc/os-release");
}

/* The stagehand= kernel argument (deployment-karg.h). libc only. */
#include "deployment-karg.h"

#include <stdlib.h>
#include <string.h>

static bool
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool
deployment_os_name_is_valid (const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-' || strlen (name) > 64)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
          || *p == '-'))
      return false;
  return true;
}

bool
deployment_id_string_is_valid (const char *id)
{
  if (id == NULL || id[0] == '\0' || id[0] == '0' || strlen (id) > 9)
    return false;
  for (const char *p = id; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}

char *
deployment_karg_find (const char *cmdline)
{
  const char *key = DEPLOYMENT_KARG_KEY "=";
  size_t key_len = strlen (key);
  char *found = NULL;
  const char *p = cmdline ? cmdline : "";
  while (*p)
    {
      while (is_space (*p))
        p++;
      if (*p == '\0')
        break;
      /* One argument as the kernel's next_arg() splits it: spaces inside
       * double quotes do not end it. */
      const char *start = p;
      bool in_quote = false;
      while (*p && (in_quote || !is_space (*p)))
        {
          if (*p == '"')
            in_quote = !in_quote;
          p++;
        }
      const char *end = p;
      /* The kernel strips a quote opening the whole argument or its value,
       * and the one closing it: "stagehand=/x" and stagehand="/x" are /x. */
      bool quoted = *start == '"';
      if (quoted)
        start++;
      if ((size_t)(end - start) < key_len || strncmp (start, key, key_len) != 0)
        continue;
      const char *value = start + key_len;
      if (value < end && *value == '"')
        {
          value++;
          quoted = true;
        }
      if (quoted && end > value && end[-1] == '"')
        end--;
      char *copy = strndup (value, end - value);
      if (copy == NULL)
        continue;
      free (found);
      found = copy;
    }
  return found;
}

const char *
deployment_karg_check (const char *value, const char **ret_os, size_t *ret_os_len,
                       const char **ret_id)
{
  if (value == NULL || value[0] == '\0')
    return "empty path";
  /* ".." first: whatever else is wrong, a path that climbs out is named as
   * such. */
  for (const char *c = value; *c;)
    {
      size_t len = strcspn (c, "/");
      if (len == 2 && c[0] == '.' && c[1] == '.')
        return "contains \"..\"";
      c += len;
      if (*c == '/')
        c++;
    }
  if (value[0] != '/')
    return "not an absolute path";
  if (strncmp (value, DEPLOYMENT_KARG_PREFIX, strlen (DEPLOYMENT_KARG_PREFIX)) != 0)
    return "not below " DEPLOYMENT_KARG_PREFIX;
  const char *os = value + strlen (DEPLOYMENT_KARG_PREFIX);
  const char *slash = strchr (os, '/');
  if (slash == NULL || strchr (slash + 1, '/') != NULL)
    return "not of the form " DEPLOYMENT_KARG_PREFIX "<os>/<id>";
  size_t os_len = slash - os;
  char os_name[65];
  if (os_len == 0 || os_len >= sizeof os_name)
    return "invalid os name";
  memcpy (os_name, os, os_len);
  os_name[os_len] = '\0';
  if (!deployment_os_name_is_valid (os_name))
    return "invalid os name";
  if (!deployment_id_string_is_valid (slash + 1))
    return "invalid deployment id";
  if (ret_os)
    *ret_os = os;
  if (ret_os_len)
    *ret_os_len = os_len;
  if (ret_id)
    *ret_id = slash + 1;
  return NULL;
}

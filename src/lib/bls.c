#include "config.h"

#include "bls.h"
#include "errors.h"
#include "karg.h"

#include <string.h>

void
boot_entry_free (BootEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->filename);
  g_free (entry->title);
  g_free (entry->version);
  g_free (entry->sort_key);
  g_free (entry->machine_id);
  g_free (entry->linux_path);
  g_strfreev (entry->initrds);
  g_free (entry->options);
  g_free (entry->raw);
  g_free (entry);
}

gboolean
boot_entry_is_ours (const BootEntry *entry)
{
  return g_str_has_prefix (entry->filename, BOOT_ENTRY_PREFIX);
}

static void
set_once (char **field, const char *value)
{
  g_free (*field);
  *field = g_strdup (value);
}

gboolean
boot_entry_parse (const char *filename, const char *contents, BootEntry **ret_entry, GError **error)
{
  g_autoptr (BootEntry) entry = g_new0 (BootEntry, 1);
  entry->filename = g_strdup (filename);
  entry->raw = g_strdup (contents);
  entry->raw_len = strlen (contents);
  g_autoptr (GPtrArray) initrds = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) options = g_string_new (NULL);

  g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);
  guint lineno = 0;
  for (char **l = lines; *l; l++)
    {
      lineno++;
      g_autofree char *line = g_strstrip (g_strdup (*l));
      if (line[0] == '\0' || line[0] == '#')
        continue;
      char *sep = line + strcspn (line, " \t");
      const char *value = "";
      if (*sep != '\0')
        {
          *sep = '\0';
          value = sep + 1 + strspn (sep + 1, " \t");
        }
      const char *key = line;
      /* kernel-install writes "options" with an empty value; bootctl accepts
       * it, and so do we. Any other key without a value is corrupt in our
       * own entries; another tool's entry is carried over as it is anyway. */
      if (*value == '\0' && strcmp (key, "options") != 0)
        {
          if (g_str_has_prefix (filename, BOOT_ENTRY_PREFIX))
            return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                                "boot entry %s, line %u: \"%s\" has no value", filename, lineno,
                                key);
          continue;
        }

      if (strcmp (key, "title") == 0)
        set_once (&entry->title, value);
      else if (strcmp (key, "version") == 0)
        set_once (&entry->version, value);
      else if (strcmp (key, "sort-key") == 0)
        set_once (&entry->sort_key, value);
      else if (strcmp (key, "machine-id") == 0)
        set_once (&entry->machine_id, value);
      else if (strcmp (key, "linux") == 0)
        set_once (&entry->linux_path, value);
      else if (strcmp (key, "initrd") == 0)
        g_ptr_array_add (initrds, g_strdup (value));
      else if (strcmp (key, "options") == 0)
        g_string_append_printf (options, "%s%s", options->len ? " " : "", value);
      /* Other keys (devicetree, architecture, efi...) are the business of
       * the tool that wrote the entry; foreign entries are kept verbatim. */
    }
  g_ptr_array_add (initrds, NULL);
  entry->initrds = (char **)g_ptr_array_free (g_steal_pointer (&initrds), FALSE);
  entry->options = g_string_free (g_steal_pointer (&options), FALSE);

  if (boot_entry_is_ours (entry))
    {
      if (entry->linux_path == NULL)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "boot entry %s has no linux line",
                            filename);
      g_autofree char *deployment = boot_entry_get_deployment (entry);
      if (deployment == NULL)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                            "boot entry %s has no " KARG_DEPLOYMENT_KEY "= option", filename);
    }

  *ret_entry = g_steal_pointer (&entry);
  return TRUE;
}

char *
boot_entry_to_data (const BootEntry *entry)
{
  if (!boot_entry_is_ours (entry) && entry->raw != NULL)
    return g_strdup (entry->raw);

  GString *s = g_string_new (NULL);
  if (entry->title)
    g_string_append_printf (s, "title %s\n", entry->title);
  if (entry->version)
    g_string_append_printf (s, "version %s\n", entry->version);
  if (entry->sort_key)
    g_string_append_printf (s, "sort-key %s\n", entry->sort_key);
  if (entry->machine_id)
    g_string_append_printf (s, "machine-id %s\n", entry->machine_id);
  if (entry->linux_path)
    g_string_append_printf (s, "linux %s\n", entry->linux_path);
  for (char **i = entry->initrds; i && *i; i++)
    g_string_append_printf (s, "initrd %s\n", *i);
  if (entry->options && *entry->options)
    g_string_append_printf (s, "options %s\n", entry->options);
  return g_string_free (s, FALSE);
}

char *
boot_entry_get_deployment (const BootEntry *entry)
{
  g_auto (GStrv) kargs = kargs_split (entry->options);
  for (char **k = kargs; *k; k++)
    if (g_str_has_prefix (*k, KARG_DEPLOYMENT_KEY "="))
      return g_strdup (*k + strlen (KARG_DEPLOYMENT_KEY "="));
  return NULL;
}

static gboolean
is_version_char (char c)
{
  return g_ascii_isalnum (c) || c == '~' || c == '-' || c == '^' || c == '.';
}

/* Compares the segments of two version strings the UAPI.10 way: '~' sorts
 * before everything (pre-releases), more segments is newer, '-' before '^'
 * before '.', numbers compare by value and beat letters. */
int
version_compare (const char *a, const char *b)
{
  if (a == b)
    return 0;
  if (a == NULL)
    return -1;
  if (b == NULL)
    return 1;

  for (;;)
    {
      while (*a && !is_version_char (*a))
        a++;
      while (*b && !is_version_char (*b))
        b++;

      if (*a == '~' || *b == '~')
        {
          if ((*a == '~') != (*b == '~'))
            return *a == '~' ? -1 : 1;
          a++, b++;
        }
      if (*a == '\0' || *b == '\0')
        return (*a != '\0') - (*b != '\0');
      if (*a == '-' || *b == '-')
        {
          if ((*a == '-') != (*b == '-'))
            return *a == '-' ? -1 : 1;
          a++, b++;
        }
      if (*a == '^' || *b == '^')
        {
          if ((*a == '^') != (*b == '^'))
            return *a == '^' ? -1 : 1;
          a++, b++;
        }
      if (*a == '.' || *b == '.')
        {
          if ((*a == '.') != (*b == '.'))
            return *a == '.' ? -1 : 1;
          a++, b++;
        }

      const char *aa = a, *bb = b;
      if (g_ascii_isdigit (*a) || g_ascii_isdigit (*b))
        {
          while (g_ascii_isdigit (*aa))
            aa++;
          while (g_ascii_isdigit (*bb))
            bb++;
          if ((aa != a) != (bb != b))
            return aa != a ? 1 : -1;
          while (*a == '0')
            a++;
          while (*b == '0')
            b++;
          if (aa - a != bb - b)
            return aa - a < bb - b ? -1 : 1;
          int r = memcmp (a, b, aa - a);
          if (r != 0)
            return r < 0 ? -1 : 1;
        }
      else
        {
          while (g_ascii_isalpha (*aa))
            aa++;
          while (g_ascii_isalpha (*bb))
            bb++;
          int r = memcmp (a, b, MIN (aa - a, bb - b));
          if (r != 0)
            return r < 0 ? -1 : 1;
          if (aa - a != bb - b)
            return aa - a < bb - b ? -1 : 1;
        }
      a = aa;
      b = bb;
    }
}

static int
strcmp_null (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return (a != NULL) - (b != NULL);
  return strcmp (a, b);
}

int
boot_entry_compare (const BootEntry *a, const BootEntry *b)
{
  /* Entries with a sort-key come before entries without one. */
  if ((a->sort_key == NULL) != (b->sort_key == NULL))
    return a->sort_key == NULL ? 1 : -1;
  if (a->sort_key != NULL)
    {
      int r = strcmp (a->sort_key, b->sort_key);
      if (r != 0)
        return r;
      r = strcmp_null (a->machine_id, b->machine_id);
      if (r != 0)
        return r;
      r = version_compare (b->version, a->version);
      if (r != 0)
        return r;
    }
  /* The file name without ".conf", newest first. */
  g_autofree char *ida = g_strdup (a->filename);
  g_autofree char *idb = g_strdup (b->filename);
  if (g_str_has_suffix (ida, ".conf"))
    ida[strlen (ida) - 5] = '\0';
  if (g_str_has_suffix (idb, ".conf"))
    idb[strlen (idb) - 5] = '\0';
  return version_compare (idb, ida);
}

static int
boot_entry_compare_ptr (gconstpointer a, gconstpointer b)
{
  return boot_entry_compare (*(BootEntry *const *)a, *(BootEntry *const *)b);
}

void
boot_entries_sort (GPtrArray *entries)
{
  g_ptr_array_sort (entries, boot_entry_compare_ptr);
}

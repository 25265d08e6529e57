#include "config.h"

#include "bls.h"
#include "errors.h"
#include "karg.h"

#include <string.h>

void
boot_counter_clear (BootCounter *counter)
{
  g_clear_pointer (&counter->text, g_free);
  counter->tries_left = -1;
  counter->tries_done = 0;
}

void
boot_entry_free (BootEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->filename);
  g_free (entry->id);
  boot_counter_clear (&entry->counter);
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

#define ENTRY_SUFFIX ".conf"

/* Decimal digits at *@p, at least one, into @ret (at most G_MAXINT, as
 * systemd-boot's limit); advances *@p. */
static gboolean
parse_counter_number (const char **p, int *ret)
{
  const char *s = *p;
  guint64 v = 0;
  if (!g_ascii_isdigit (*s))
    return FALSE;
  for (; g_ascii_isdigit (*s); s++)
    {
      v = v * 10 + (guint64)(*s - '0');
      if (v > G_MAXINT)
        return FALSE;
    }
  *ret = (int)v;
  *p = s;
  return TRUE;
}

/* The length of the ".conf" suffix of @name (any case, as systemd-boot
 * matches it), or 0. */
static gsize
entry_suffix_len (const char *name)
{
  gsize len = strlen (name), slen = strlen (ENTRY_SUFFIX);
  return len >= slen && g_ascii_strcasecmp (name + len - slen, ENTRY_SUFFIX) == 0 ? slen : 0;
}

char *
boot_entry_name_split (const char *filename, BootCounter *ret_counter)
{
  BootCounter counter = { NULL, -1, 0 };
  gsize suffix_len = entry_suffix_len (filename);
  gsize stem_len = strlen (filename) - suffix_len;
  /* The last '+' before the suffix starts the counter (systemd-boot takes
   * the last one in the name, so "a+b+3.conf" is "a+b.conf" with +3). */
  const char *plus = g_strrstr_len (filename, stem_len, "+");
  if (plus != NULL)
    {
      const char *p = plus + 1;
      int left = -1, done = 0;
      if (parse_counter_number (&p, &left) && (*p != '-' || (p++, parse_counter_number (&p, &done)))
          && p == filename + stem_len)
        {
          counter.text = g_strndup (plus, p - plus);
          counter.tries_left = left;
          counter.tries_done = done;
        }
    }
  char *id = counter.text == NULL ? g_strdup (filename)
                                  : g_strdup_printf ("%.*s%s", (int)(plus - filename), filename,
                                                     filename + stem_len);
  if (ret_counter != NULL)
    *ret_counter = counter;
  else
    boot_counter_clear (&counter);
  return id;
}

char *
boot_entry_name_join (const char *id, const char *counter)
{
  if (counter == NULL)
    return g_strdup (id);
  gsize suffix_len = entry_suffix_len (id);
  gsize stem_len = strlen (id) - suffix_len;
  return g_strdup_printf ("%.*s%s%s", (int)stem_len, id, counter, id + stem_len);
}

gboolean
boot_entry_name_equal (const char *a, const char *b)
{
  g_autofree char *ida = boot_entry_name_split (a, NULL);
  g_autofree char *idb = boot_entry_name_split (b, NULL);
  return g_ascii_strcasecmp (ida, idb) == 0;
}

char *
boot_counter_new_text (guint tries)
{
  return g_strdup_printf ("+%u", tries);
}

void
boot_entry_set_counter (BootEntry *entry, const char *counter)
{
  g_autofree char *filename = boot_entry_name_join (entry->id, counter);
  g_free (entry->filename);
  boot_counter_clear (&entry->counter);
  g_free (entry->id);
  /* Read back, so a counter that does not parse is no counter, as the
   * boot loader will see it. */
  entry->id = boot_entry_name_split (filename, &entry->counter);
  entry->filename = g_steal_pointer (&filename);
}

BootEntry *
boot_entry_new (const char *filename)
{
  BootEntry *entry = g_new0 (BootEntry, 1);
  entry->filename = g_strdup (filename);
  entry->id = boot_entry_name_split (filename, &entry->counter);
  return entry;
}

void
boot_entries_carry_counters (GPtrArray *entries, GPtrArray *live, guint tries)
{
  for (guint i = 0; i < entries->len; i++)
    {
      BootEntry *e = entries->pdata[i];
      g_autofree char *deployment = boot_entry_get_deployment (e);
      const BootEntry *was = NULL;
      for (guint j = 0; j < live->len && was == NULL && deployment != NULL; j++)
        {
          const BootEntry *l = live->pdata[j];
          g_autofree char *d = boot_entry_is_ours (l) ? boot_entry_get_deployment (l) : NULL;
          if (g_strcmp0 (d, deployment) == 0)
            was = l;
        }
      g_autofree char *fresh
          = was == NULL && i == 0 && tries > 0 ? boot_counter_new_text (tries) : NULL;
      boot_entry_set_counter (e, was != NULL ? was->counter.text : fresh);
    }
}

gboolean
boot_entry_is_exhausted (const BootEntry *entry)
{
  return entry->counter.tries_left == 0;
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
  g_autoptr (BootEntry) entry = boot_entry_new (filename);
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

/* The identity without ".conf", for the version comparison of names. */
static char *
id_stem (const BootEntry *e)
{
  const char *id = e->id != NULL ? e->id : e->filename;
  return g_strndup (id, strlen (id) - entry_suffix_len (id));
}

static int
compare_entries (const BootEntry *a, const BootEntry *b, gboolean with_counters)
{
  /* systemd-boot puts an entry with no tries left after all others: that
   * is the automatic fallback. */
  if (with_counters && boot_entry_is_exhausted (a) != boot_entry_is_exhausted (b))
    return boot_entry_is_exhausted (a) ? 1 : -1;
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
  /* The identity (the name without counter and ".conf"), newest first. */
  g_autofree char *ida = id_stem (a);
  g_autofree char *idb = id_stem (b);
  int r = version_compare (idb, ida);
  if (r != 0 || !with_counters)
    return r;
  if (a->counter.text == NULL || b->counter.text == NULL)
    return 0;
  /* The same entry twice (a crash mid-rename): more tries left first,
   * then fewer done. */
  if (a->counter.tries_left != b->counter.tries_left)
    return a->counter.tries_left > b->counter.tries_left ? -1 : 1;
  return (a->counter.tries_done > b->counter.tries_done)
         - (a->counter.tries_done < b->counter.tries_done);
}

int
boot_entry_compare (const BootEntry *a, const BootEntry *b)
{
  return compare_entries (a, b, TRUE);
}

int
boot_entry_compare_as_written (const BootEntry *a, const BootEntry *b)
{
  return compare_entries (a, b, FALSE);
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

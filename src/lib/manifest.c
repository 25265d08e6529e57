/* Per-deployment manifests: the regular files of a tree with their metadata
 * and content hashes, for deduplication (see manifest.h). */
#include "config.h"

#include "manifest.h"
#include "manifest-text.h"
#include "errors.h"
#include "fsutil.h"

#include <string.h>
#include <zlib.h>

#define MANIFEST_HEADER "stagehand-manifest 1"
#define MANIFEST_HEADER_V2 "stagehand-manifest 2"

/* A manifest of a million files is ~150 MB of text: anything that inflates
 * to more than this is not one. It also bounds the file read (compressed or
 * not), which keeps every length handed to zlib (32-bit uInt) in range. */
#define MANIFEST_MAX_TEXT ((gsize)1 << 30)

struct _Manifest
{
  /* path -> ManifestEntry, one allocation holding the entry and its path */
  GHashTable *entries;
};

Manifest *
manifest_new (void)
{
  Manifest *m = g_new0 (Manifest, 1);
  m->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  return m;
}

void
manifest_free (Manifest *manifest)
{
  if (manifest == NULL)
    return;
  g_hash_table_unref (manifest->entries);
  g_free (manifest);
}

void
manifest_set (Manifest *manifest, const ManifestEntry *entry)
{
  gsize path_len = strlen (entry->path) + 1;
  gsize target_len = entry->target != NULL ? strlen (entry->target) + 1 : 0;
  ManifestEntry *copy = g_malloc (sizeof *copy + path_len + target_len);
  *copy = *entry;
  char *path = (char *)(copy + 1);
  memcpy (path, entry->path, path_len);
  copy->path = path;
  if (entry->target != NULL)
    {
      copy->target = path + path_len;
      memcpy ((char *)copy->target, entry->target, target_len);
    }
  /* Replacing frees the old entry, and with it the old key: insert would
   * keep that key, so remove first. */
  g_hash_table_remove (manifest->entries, path);
  g_hash_table_insert (manifest->entries, path, copy);
}

const ManifestEntry *
manifest_lookup (const Manifest *manifest, const char *path)
{
  return g_hash_table_lookup (manifest->entries, path);
}

void
manifest_foreach (const Manifest *manifest,
                  void (*func) (const ManifestEntry *entry, gpointer user_data), gpointer user_data)
{
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, manifest->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    func (value, user_data);
}

guint
manifest_count (const Manifest *manifest)
{
  return g_hash_table_size (manifest->entries);
}

gboolean
manifest_entry_equal (const ManifestEntry *a, const ManifestEntry *b)
{
  return a->type == b->type && g_strcmp0 (a->target, b->target) == 0 && a->size == b->size
         && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid
         && a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec
         && memcmp (a->xattr_hash, b->xattr_hash, MANIFEST_HASH_LEN) == 0
         && memcmp (a->content_hash, b->content_hash, MANIFEST_HASH_LEN) == 0;
}

static gboolean
byte_is_plain (guchar c)
{
  return c > ' ' && c < 0x7f && c != '\\';
}

static const char HEX[] = "0123456789abcdef";

void
manifest_text_append_escaped (GString *s, const char *bytes)
{
  for (const guchar *p = (const guchar *)bytes; *p != '\0'; p++)
    {
      if (byte_is_plain (*p))
        {
          g_string_append_c (s, *p);
          continue;
        }
      char esc[4] = { '\\', 'x', HEX[*p >> 4], HEX[*p & 0xf] };
      g_string_append_len (s, esc, sizeof esc);
    }
}

char *
manifest_escape_path (const char *path)
{
  GString *s = g_string_sized_new (strlen (path) + 8);
  manifest_text_append_escaped (s, path);
  return g_string_free (s, FALSE);
}

gboolean
manifest_unescape_path (const char *escaped, char **ret_path)
{
  GString *s = g_string_sized_new (strlen (escaped));
  for (const guchar *p = (const guchar *)escaped; *p != '\0'; p++)
    {
      if (byte_is_plain (*p))
        {
          g_string_append_c (s, *p);
          continue;
        }
      int hi, lo;
      if (*p != '\\' || p[1] != 'x' || (hi = g_ascii_xdigit_value (p[2])) < 0
          || (lo = g_ascii_xdigit_value (p[3])) < 0 || (hi == 0 && lo == 0))
        {
          g_string_free (s, TRUE);
          return FALSE;
        }
      g_string_append_c (s, (char)(hi << 4 | lo));
      p += 3;
    }
  if (s->len == 0)
    {
      g_string_free (s, TRUE);
      return FALSE;
    }
  *ret_path = g_string_free (s, FALSE);
  return TRUE;
}

void
manifest_text_append_hash (GString *s, char sep, const guint8 *hash)
{
  char hex[2 * MANIFEST_HASH_LEN];
  for (guint i = 0; i < MANIFEST_HASH_LEN; i++)
    {
      hex[2 * i] = HEX[hash[i] >> 4];
      hex[2 * i + 1] = HEX[hash[i] & 0xf];
    }
  if (sep != '\0')
    g_string_append_c (s, sep);
  g_string_append_len (s, hex, sizeof hex);
}

void
manifest_text_append_number (GString *s, char sep, guint64 value, guint base, guint min_digits)
{
  char digits[24];
  guint n = 0;
  do
    {
      digits[n++] = HEX[value % base];
      value /= base;
    }
  while (value > 0);
  while (n < min_digits)
    digits[n++] = '0';
  if (sep != '\0')
    g_string_append_c (s, sep);
  while (n > 0)
    g_string_append_c (s, digits[--n]);
}

gboolean
manifest_text_parse_hash (const char *s, guint8 *ret_hash)
{
  if (strlen (s) != 2 * MANIFEST_HASH_LEN)
    return FALSE;
  for (guint i = 0; i < MANIFEST_HASH_LEN; i++)
    {
      int hi = g_ascii_xdigit_value (s[2 * i]), lo = g_ascii_xdigit_value (s[2 * i + 1]);
      if (hi < 0 || lo < 0 || g_ascii_isupper (s[2 * i]) || g_ascii_isupper (s[2 * i + 1]))
        return FALSE;
      ret_hash[i] = hi << 4 | lo;
    }
  return TRUE;
}

guint
manifest_text_split (char *line, char **fields, guint max)
{
  guint n = 0;
  for (char *p = line; n < max;)
    {
      fields[n++] = p;
      char *space = strchr (p, ' ');
      if (space == NULL)
        break;
      *space = '\0';
      p = space + 1;
    }
  return n;
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

char *
manifest_to_data (const Manifest *manifest, gsize *ret_len)
{
  guint n;
  g_autofree gpointer *paths = g_hash_table_get_keys_as_array (manifest->entries, &n);
  qsort (paths, n, sizeof *paths, compare_paths);
  GString *s = g_string_sized_new (64 + (gsize)n * 128);
  gboolean v2 = FALSE;
  for (guint i = 0; i < n && !v2; i++)
    v2 = ((const ManifestEntry *)g_hash_table_lookup (manifest->entries, paths[i]))->type
         != MANIFEST_TYPE_FILE;
  /* Version 1 when it can be: a stagehand that only knows version 1 still
   * shares the files of such a deployment. */
  g_string_append (s, v2 ? MANIFEST_HEADER_V2 "\n" : MANIFEST_HEADER "\n");
  for (guint i = 0; i < n; i++)
    {
      const ManifestEntry *e = g_hash_table_lookup (manifest->entries, paths[i]);
      manifest_text_append_escaped (s, e->path);
      if (e->type == MANIFEST_TYPE_DIR)
        {
          g_string_append (s, " d");
          manifest_text_append_number (s, ' ', e->mode, 8, 4);
          manifest_text_append_number (s, ' ', e->uid, 10, 1);
          manifest_text_append_number (s, ' ', e->gid, 10, 1);
          manifest_text_append_hash (s, ' ', e->xattr_hash);
        }
      else if (e->type == MANIFEST_TYPE_SYMLINK)
        {
          g_string_append (s, " l");
          manifest_text_append_number (s, ' ', e->uid, 10, 1);
          manifest_text_append_number (s, ' ', e->gid, 10, 1);
          manifest_text_append_hash (s, ' ', e->xattr_hash);
          g_string_append_c (s, ' ');
          manifest_text_append_escaped (s, e->target);
        }
      else
        {
          manifest_text_append_number (s, ' ', e->size, 10, 1);
          manifest_text_append_number (s, ' ', e->mode, 8, 4);
          manifest_text_append_number (s, ' ', e->uid, 10, 1);
          manifest_text_append_number (s, ' ', e->gid, 10, 1);
          g_string_append_c (s, ' ');
          if (e->mtime_sec < 0)
            g_string_append_c (s, '-');
          /* The magnitude of G_MININT64 does not fit a gint64: negate unsigned. */
          manifest_text_append_number (
              s, '\0', e->mtime_sec < 0 ? -(guint64)e->mtime_sec : (guint64)e->mtime_sec, 10, 1);
          manifest_text_append_number (s, '.', e->mtime_nsec, 10, 9);
          manifest_text_append_hash (s, ' ', e->xattr_hash);
          manifest_text_append_hash (s, ' ', e->content_hash);
        }
      g_string_append_c (s, '\n');
    }
  *ret_len = s->len;
  return g_string_free (s, FALSE);
}

static gboolean
parse_unsigned (const char *s, guint base, guint64 max, guint64 *ret)
{
  return g_ascii_string_to_unsigned (s, base, 0, max, ret, NULL);
}

/* A version 2 directory or symlink line (see manifest.h), split in @fields. */
static gboolean
parse_other_line (char **fields, guint n, ManifestEntry *e, char **ret_path, char **ret_target)
{
  guint64 mode = 0, uid, gid;
  *e = (ManifestEntry){ 0 };
  if (strcmp (fields[1], "d") == 0 && n == 6)
    {
      e->type = MANIFEST_TYPE_DIR;
      if (!parse_unsigned (fields[2], 8, 07777, &mode)
          || !parse_unsigned (fields[3], 10, G_MAXUINT32, &uid)
          || !parse_unsigned (fields[4], 10, G_MAXUINT32, &gid)
          || !manifest_text_parse_hash (fields[5], e->xattr_hash))
        return FALSE;
    }
  else if (strcmp (fields[1], "l") == 0 && n == 6)
    {
      e->type = MANIFEST_TYPE_SYMLINK;
      if (!parse_unsigned (fields[2], 10, G_MAXUINT32, &uid)
          || !parse_unsigned (fields[3], 10, G_MAXUINT32, &gid)
          || !manifest_text_parse_hash (fields[4], e->xattr_hash)
          || !manifest_unescape_path (fields[5], ret_target))
        return FALSE;
    }
  else
    return FALSE;
  if (!manifest_unescape_path (fields[0], ret_path))
    {
      g_clear_pointer (ret_target, g_free);
      return FALSE;
    }
  e->mode = mode;
  e->uid = uid;
  e->gid = gid;
  return TRUE;
}

/* Fields of one line, split in place; FALSE if it does not parse. */
static gboolean
parse_line (char *line, gboolean v2, ManifestEntry *e, char **ret_path, char **ret_target)
{
  char *fields[8];
  guint n = manifest_text_split (line, fields, G_N_ELEMENTS (fields));
  if (v2 && n >= 2 && fields[1][1] == '\0' && g_ascii_isalpha (fields[1][0]))
    return strchr (fields[n - 1], ' ') == NULL
           && parse_other_line (fields, n, e, ret_path, ret_target);
  if (n != G_N_ELEMENTS (fields) || strchr (fields[7], ' ') != NULL)
    return FALSE;
  *e = (ManifestEntry){ 0 };

  guint64 size, mode, uid, gid, nsec;
  gint64 sec;
  char *dot = strchr (fields[5], '.');
  if (dot == NULL || strlen (dot + 1) != 9)
    return FALSE;
  *dot = '\0';
  if (!parse_unsigned (fields[1], 10, G_MAXUINT64, &size)
      || !parse_unsigned (fields[2], 8, 07777, &mode)
      || !parse_unsigned (fields[3], 10, G_MAXUINT32, &uid)
      || !parse_unsigned (fields[4], 10, G_MAXUINT32, &gid)
      || !g_ascii_string_to_signed (fields[5], 10, G_MININT64, G_MAXINT64, &sec, NULL)
      || !parse_unsigned (dot + 1, 10, 999999999, &nsec)
      || !manifest_text_parse_hash (fields[6], e->xattr_hash)
      || !manifest_text_parse_hash (fields[7], e->content_hash))
    return FALSE;
  if (!manifest_unescape_path (fields[0], ret_path))
    return FALSE;
  e->size = size;
  e->mode = mode;
  e->uid = uid;
  e->gid = gid;
  e->mtime_sec = sec;
  e->mtime_nsec = nsec;
  return TRUE;
}

char *
manifest_to_file_data (const Manifest *manifest, gsize *ret_len)
{
  gsize text_len;
  g_autofree char *text = manifest_to_data (manifest, &text_len);
  /* It would not be read back (see MANIFEST_MAX_TEXT), and zlib's lengths
   * are 32-bit: a text of 4 GiB or more would be cut short silently. */
  if (text_len > MANIFEST_MAX_TEXT)
    return NULL;
  z_stream z = { 0 };
  /* windowBits 15 + 16: a gzip stream, so `zcat` reads the file. */
  if (deflateInit2 (&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    g_error ("deflateInit2: out of memory");
  gsize bound = deflateBound (&z, text_len);
  char *out = g_malloc (bound);
  z.next_in = (Bytef *)text;
  z.avail_in = text_len;
  z.next_out = (Bytef *)out;
  z.avail_out = bound;
  /* One call: deflateBound() is room enough for Z_FINISH to complete. */
  int rc = deflate (&z, Z_FINISH);
  g_assert (rc == Z_STREAM_END);
  *ret_len = z.total_out;
  deflateEnd (&z);
  return out;
}

/* The text of a gzip-compressed manifest, NUL-terminated. */
static gboolean
inflate_manifest (const char *data, gsize len, const char *what, char **ret_text,
                  gsize *ret_text_len, GError **error)
{
  z_stream z = { 0 };
  if (inflateInit2 (&z, 15 + 16) != Z_OK)
    g_error ("inflateInit2: out of memory");
  gsize cap = MAX (len * 4, (gsize)4096);
  g_autofree char *text = g_malloc (cap + 1);
  z.next_in = (Bytef *)data;
  z.avail_in = len;
  int rc;
  do
    {
      if (z.total_out == cap)
        {
          if (cap >= MANIFEST_MAX_TEXT)
            {
              inflateEnd (&z);
              return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                                  "%s is corrupt: it inflates to more than %" G_GSIZE_FORMAT
                                  " bytes",
                                  what, MANIFEST_MAX_TEXT);
            }
          cap = MIN (cap * 2, MANIFEST_MAX_TEXT);
          text = g_realloc (text, cap + 1);
        }
      z.next_out = (Bytef *)text + z.total_out;
      z.avail_out = cap - z.total_out;
      rc = inflate (&z, Z_NO_FLUSH);
    }
  while (rc == Z_OK);
  gsize text_len = z.total_out;
  gboolean trailing = z.avail_in != 0;
  inflateEnd (&z);
  if (rc != Z_STREAM_END || trailing)
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: %s", what,
                        rc == Z_STREAM_END  ? "data after the compressed stream"
                        : rc == Z_BUF_ERROR ? "the compressed stream is cut short"
                                            : "the compressed stream does not inflate");
  text[text_len] = '\0';
  *ret_text = g_steal_pointer (&text);
  *ret_text_len = text_len;
  return TRUE;
}

gboolean
manifest_parse (const char *data, gsize len, const char *what, Manifest **ret_manifest,
                GError **error)
{
  g_autofree char *inflated = NULL;
  if (len >= 2 && (guint8)data[0] == 0x1f && (guint8)data[1] == 0x8b)
    {
      if (!inflate_manifest (data, len, what, &inflated, &len, error))
        return FALSE;
      data = inflated;
    }
  if (memchr (data, '\0', len) != NULL)
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: it contains a NUL byte",
                        what);
  g_autofree char *copy = g_strndup (data, len);
  char *line = copy;
  char *end = strchr (line, '\n');
  if (end == NULL
      || (*end = '\0',
          strcmp (line, MANIFEST_HEADER) != 0 && strcmp (line, MANIFEST_HEADER_V2) != 0))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "%s is corrupt: it does not start with \"" MANIFEST_HEADER "\"", what);
  gboolean v2 = strcmp (line, MANIFEST_HEADER_V2) == 0;

  g_autoptr (Manifest) m = manifest_new ();
  for (guint lineno = 2; (line = end + 1) < copy + len; lineno++)
    {
      end = strchr (line, '\n');
      if (end == NULL)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: line %u is cut short",
                            what, lineno);
      *end = '\0';
      ManifestEntry e;
      g_autofree char *path = NULL;
      g_autofree char *target = NULL;
      if (!parse_line (line, v2, &e, &path, &target))
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: line %u does not parse",
                            what, lineno);
      if (manifest_lookup (m, path) != NULL)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: line %u repeats a path",
                            what, lineno);
      e.path = path;
      e.target = target;
      manifest_set (m, &e);
    }
  *ret_manifest = g_steal_pointer (&m);
  return TRUE;
}

gboolean
manifest_load_at (int dfd, const char *name, Manifest **ret_manifest, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!fs_read_file_at_optional (dfd, name, MANIFEST_MAX_TEXT, &data, &len, error))
    return prefix_error (error, "reading %s: ", name);
  if (data == NULL)
    {
      *ret_manifest = NULL;
      return TRUE;
    }
  return manifest_parse (data, len, name, ret_manifest, error);
}

/* The versions of an /etc the merge compares (etc-merge.h): reading one
 * from a directory or a manifest, and the state file stage leaves for the
 * finalize. */
#include "config.h"

#include "errors.h"
#include "etc-private.h"
#include "import-private.h"
#include "manifest-text.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define STATE_HEADER "stagehand-etc-state 1"

struct _EtcTree
{
  GHashTable *entries; /* path -> EtcEntry* */
};

static void
etc_entry_free (EtcEntry *e)
{
  g_free (e->path);
  g_free (e->target);
  g_free (e);
}

EtcTree *
etc_tree_new (void)
{
  EtcTree *t = g_new0 (EtcTree, 1);
  t->entries
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)etc_entry_free);
  return t;
}

void
etc_tree_free (EtcTree *tree)
{
  if (tree == NULL)
    return;
  g_hash_table_unref (tree->entries);
  g_free (tree);
}

void
etc_tree_add (EtcTree *tree, const EtcEntry *entry)
{
  EtcEntry *copy = g_memdup2 (entry, sizeof *entry);
  copy->path = g_strdup (entry->path);
  copy->target = g_strdup (entry->target);
  g_hash_table_remove (tree->entries, copy->path);
  g_hash_table_insert (tree->entries, copy->path, copy);
}

const EtcEntry *
etc_tree_lookup (const EtcTree *tree, const char *path)
{
  return tree != NULL ? g_hash_table_lookup (tree->entries, path) : NULL;
}

GHashTable *
etc_tree_entries (const EtcTree *tree)
{
  return tree->entries;
}

guint
etc_tree_count (const EtcTree *tree)
{
  return g_hash_table_size (tree->entries);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The paths, sorted bytewise (a directory before what is below it). */
GPtrArray *
etc_tree_sorted_paths (const EtcTree *tree)
{
  GPtrArray *paths = g_ptr_array_sized_new (g_hash_table_size (tree->entries));
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, tree->entries);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (paths, key);
  g_ptr_array_sort (paths, compare_strings);
  return paths;
}

gboolean
etc_entry_equal (const EtcEntry *a, const EtcEntry *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  if (a->type != b->type || a->uid != b->uid || a->gid != b->gid
      || memcmp (a->xattr_hash, b->xattr_hash, MANIFEST_HASH_LEN) != 0)
    return FALSE;
  switch (a->type)
    {
    case MANIFEST_TYPE_FILE:
      return a->mode == b->mode && a->size == b->size
             && memcmp (a->content_hash, b->content_hash, MANIFEST_HASH_LEN) == 0;
    case MANIFEST_TYPE_DIR:
      return a->mode == b->mode;
    case MANIFEST_TYPE_SYMLINK:
      return g_strcmp0 (a->target, b->target) == 0;
    }
  g_assert_not_reached ();
}

gboolean
etc_tree_equal (const EtcTree *a, const EtcTree *b)
{
  if (etc_tree_count (a) != etc_tree_count (b))
    return FALSE;
  GHashTableIter iter;
  gpointer key, value;
  g_hash_table_iter_init (&iter, a->entries);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (!etc_entry_equal (value, etc_tree_lookup (b, key)))
      return FALSE;
  return TRUE;
}

typedef EtcXattr Xattr;

static gint
compare_xattrs (gconstpointer a, gconstpointer b)
{
  return strcmp (((const Xattr *)a)->name, ((const Xattr *)b)->name);
}

static void
xattr_clear (gpointer p)
{
  Xattr *x = p;
  g_free (x->name);
  g_free (x->value);
}

gboolean
etc_read_xattrs (int fd, int dfd, const char *name, const char *what, GArray **ret, GError **error)
{
  g_autoptr (GArray) list = g_array_new (FALSE, TRUE, sizeof (Xattr));
  g_array_set_clear_func (list, xattr_clear);
  /* Bounded: a list that keeps growing between the two calls is retried a
   * few times, then reported. */
  for (guint attempt = 0; attempt < 4; attempt++)
    {
      ssize_t size = import_listxattr (fd, dfd, name, NULL, 0);
      if (size < 0 && (errno == ENOTSUP || errno == ENOSYS))
        break;
      if (size < 0)
        return throw_errno (error, "listing the extended attributes of %s", what);
      if (size == 0)
        break;
      g_autofree char *names = g_malloc (size);
      ssize_t got = import_listxattr (fd, dfd, name, names, size);
      if (got < 0 && errno == ERANGE)
        continue;
      if (got < 0)
        return throw_errno (error, "listing the extended attributes of %s", what);
      for (char *k = names; k < names + got; k += strlen (k) + 1)
        {
          ssize_t vlen = import_getxattr (fd, dfd, name, k, NULL, 0);
          if (vlen < 0 && errno == ENODATA)
            continue;
          if (vlen < 0)
            return throw_errno (error, "reading the extended attribute %s of %s", k, what);
          Xattr x = { .name = g_strdup (k), .value = g_malloc (MAX (vlen, 1)) };
          ssize_t n = import_getxattr (fd, dfd, name, k, x.value, vlen);
          if (n < 0)
            {
              xattr_clear (&x);
              return throw_errno (error, "reading the extended attribute %s of %s", k, what);
            }
          x.len = n;
          g_array_append_val (list, x);
        }
      break;
    }
  g_array_sort (list, compare_xattrs);
  *ret = g_steal_pointer (&list);
  return TRUE;
}

/* As the importer hashes them (xattr_hash_update()): @list is in name
 * order. */
static void
hash_xattrs (GArray *list, XXH3_state_t *hash, guint8 *ret)
{
  XXH3_128bits_reset (hash);
  for (guint i = 0; i < list->len; i++)
    {
      const Xattr *x = &g_array_index (list, Xattr, i);
      xattr_hash_update (hash, x->name, x->value, x->len);
    }
  import_hash_digest (hash, ret);
}

static gboolean
hash_content (int fd, const char *what, XXH3_state_t *hash, guint8 *ret, GError **error)
{
  char buf[65536];
  XXH3_128bits_reset (hash);
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "reading %s", what);
      if (n == 0)
        break;
      XXH3_128bits_update (hash, buf, n);
    }
  import_hash_digest (hash, ret);
  return TRUE;
}

typedef struct
{
  EtcTree *tree;
  const EtcTree *previous;
  const char *what;
  XXH3_state_t *hash;
} Scan;

/* TRUE when the inode at a path is, by its stat, what @prev recorded: then
 * what stat cannot show (content, target, xattrs) is taken from @prev
 * instead of read again. Any write to an inode moves its ctime (content,
 * mode, owner, xattrs, a rename over it is another inode). A directory's
 * ctime also moves with every entry added or removed in it, which only
 * costs reading its xattrs again. */
static gboolean
stat_unchanged (const EtcEntry *prev, ManifestType type, const struct stat *st)
{
  if (prev == NULL || prev->type != type || prev->ino != (guint64)st->st_ino
      || prev->uid != st->st_uid || prev->gid != st->st_gid || prev->ctime_sec != st->st_ctim.tv_sec
      || prev->ctime_nsec != st->st_ctim.tv_nsec)
    return FALSE;
  if (type == MANIFEST_TYPE_DIR)
    return prev->mode == (st->st_mode & 07777);
  return (type == MANIFEST_TYPE_SYMLINK || prev->mode == (st->st_mode & 07777))
         && prev->size == (guint64)st->st_size && prev->mtime_sec == st->st_mtim.tv_sec
         && prev->mtime_nsec == st->st_mtim.tv_nsec;
}

static gboolean scan_dir (Scan *s, int dfd, const char *prefix, GError **error);

static gboolean
scan_entry (Scan *s, int dfd, const char *name, const char *path, GError **error)
{
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      /* Removed while we read the directory: absent, like a path never there. */
      if (errno == ENOENT)
        return TRUE;
      return throw_errno (error, "reading %s/%s", s->what, path);
    }
  EtcEntry e = { .path = (char *)path,
                 .mode = st.st_mode & 07777,
                 .uid = st.st_uid,
                 .gid = st.st_gid,
                 .ino = st.st_ino,
                 .mtime_sec = st.st_mtim.tv_sec,
                 .mtime_nsec = st.st_mtim.tv_nsec,
                 .ctime_sec = st.st_ctim.tv_sec,
                 .ctime_nsec = st.st_ctim.tv_nsec };
  g_autofree char *what = g_strdup_printf ("%s/%s", s->what, path);
  g_autofree char *target = NULL;
  autofd fd = -1;
  if (S_ISREG (st.st_mode))
    {
      e.type = MANIFEST_TYPE_FILE;
      e.size = st.st_size;
      const EtcEntry *prev = etc_tree_lookup (s->previous, path);
      if (stat_unchanged (prev, MANIFEST_TYPE_FILE, &st))
        {
          etc_tree_add (s->tree, prev);
          return TRUE;
        }
      fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (fd < 0 && (errno == ENOENT || errno == ELOOP))
        return TRUE;
      if (fd < 0)
        return throw_errno (error, "opening %s", what);
      if (!hash_content (fd, what, s->hash, e.content_hash, error))
        return FALSE;
    }
  else if (S_ISDIR (st.st_mode))
    {
      e.type = MANIFEST_TYPE_DIR;
      fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
        return TRUE;
      if (fd < 0)
        return throw_errno (error, "opening %s", what);
      const EtcEntry *prev = etc_tree_lookup (s->previous, path);
      if (stat_unchanged (prev, MANIFEST_TYPE_DIR, &st))
        {
          memcpy (e.xattr_hash, prev->xattr_hash, MANIFEST_HASH_LEN);
          etc_tree_add (s->tree, &e);
          return scan_dir (s, fd, path, error);
        }
    }
  else if (S_ISLNK (st.st_mode))
    {
      e.type = MANIFEST_TYPE_SYMLINK;
      e.mode = 0777;
      e.size = st.st_size;
      const EtcEntry *prev = etc_tree_lookup (s->previous, path);
      if (stat_unchanged (prev, MANIFEST_TYPE_SYMLINK, &st))
        {
          etc_tree_add (s->tree, prev);
          return TRUE;
        }
      target = g_malloc (st.st_size + 2);
      ssize_t n = readlinkat (dfd, name, target, st.st_size + 1);
      if (n < 0 && errno == ENOENT)
        return TRUE;
      if (n < 0)
        return throw_errno (error, "reading the symlink %s", what);
      if (n > st.st_size) /* retargeted while we read it: take it next time round */
        return throw_error (error, STAGEHAND_ERROR_FAILED, "reading the symlink %s: it changed",
                            what);
      target[n] = '\0';
      e.target = target;
    }
  else
    return TRUE; /* sockets, FIFOs, device nodes: never carried */

  g_autoptr (GArray) xattrs = NULL;
  if (!etc_read_xattrs (fd, dfd, name, what, &xattrs, error))
    return FALSE;
  hash_xattrs (xattrs, s->hash, e.xattr_hash);
  etc_tree_add (s->tree, &e);
  if (e.type == MANIFEST_TYPE_DIR)
    return scan_dir (s, fd, path, error);
  return TRUE;
}

static gboolean
scan_dir (Scan *s, int dfd, const char *prefix, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  g_autofree char *what = prefix ? g_strdup_printf ("%s/%s", s->what, prefix) : g_strdup (s->what);
  if (!fs_list_dir (dfd, what, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      g_autofree char *path = prefix ? g_strdup_printf ("%s/%s", prefix, name) : g_strdup (name);
      if (!scan_entry (s, dfd, name, path, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
etc_tree_scan (int etc_dfd, const char *what, const EtcTree *previous, EtcTree **ret_tree,
               GError **error)
{
  g_autoptr (EtcTree) tree = etc_tree_new ();
  Scan s = { .tree = tree, .previous = previous, .what = what, .hash = XXH3_createState () };
  gboolean ok = scan_dir (&s, etc_dfd, NULL, error);
  XXH3_freeState (s.hash);
  if (!ok)
    return FALSE;
  *ret_tree = g_steal_pointer (&tree);
  return TRUE;
}

static void
entry_to_manifest (const EtcEntry *e, const char *path, ManifestEntry *ret)
{
  *ret = (ManifestEntry){ .path = path,
                          .type = e->type,
                          .target = e->target,
                          .size = e->size,
                          .mode = e->mode,
                          .uid = e->uid,
                          .gid = e->gid,
                          .mtime_sec = e->mtime_sec,
                          .mtime_nsec = e->mtime_nsec };
  memcpy (ret->xattr_hash, e->xattr_hash, MANIFEST_HASH_LEN);
  memcpy (ret->content_hash, e->content_hash, MANIFEST_HASH_LEN);
}

gboolean
etc_tree_add_to_manifest (const EtcTree *tree, int etc_dfd, Manifest *manifest, GError **error)
{
  struct stat st;
  if (fstat (etc_dfd, &st) < 0)
    return throw_errno (error, "reading etc/");
  g_autoptr (GArray) xattrs = NULL;
  if (!etc_read_xattrs (etc_dfd, -1, NULL, "etc/", &xattrs, error))
    return FALSE;
  XXH3_state_t *hash = XXH3_createState ();
  EtcEntry root = {
    .type = MANIFEST_TYPE_DIR, .mode = st.st_mode & 07777, .uid = st.st_uid, .gid = st.st_gid
  };
  hash_xattrs (xattrs, hash, root.xattr_hash);
  XXH3_freeState (hash);
  ManifestEntry me;
  entry_to_manifest (&root, "etc", &me);
  manifest_set (manifest, &me);

  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, tree->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      const EtcEntry *e = value;
      g_autofree char *path = g_strconcat ("etc/", e->path, NULL);
      entry_to_manifest (e, path, &me);
      manifest_set (manifest, &me);
    }
  return TRUE;
}

static void
add_from_manifest (const ManifestEntry *me, gpointer user_data)
{
  EtcTree *tree = user_data;
  if (!g_str_has_prefix (me->path, "etc/"))
    return;
  EtcEntry e = { .path = (char *)me->path + strlen ("etc/"),
                 .type = me->type,
                 .mode = me->mode,
                 .uid = me->uid,
                 .gid = me->gid,
                 .size = me->size,
                 .target = (char *)me->target };
  if (e.type == MANIFEST_TYPE_SYMLINK)
    e.mode = 0777;
  memcpy (e.xattr_hash, me->xattr_hash, MANIFEST_HASH_LEN);
  memcpy (e.content_hash, me->content_hash, MANIFEST_HASH_LEN);
  etc_tree_add (tree, &e);
}

EtcTree *
etc_tree_from_manifest (const Manifest *manifest)
{
  const ManifestEntry *root = manifest != NULL ? manifest_lookup (manifest, "etc") : NULL;
  if (root == NULL || root->type != MANIFEST_TYPE_DIR)
    return NULL;
  EtcTree *tree = etc_tree_new ();
  manifest_foreach (manifest, add_from_manifest, tree);
  return tree;
}

/* The state file: a header, then one line per entry of each tree:
 *
 *   <tree> <type> <mode> <uid> <gid> <size> <ino> <mtime>.<ns> <ctime>.<ns> <xattr-hash>
 *     <content-hash> <path> [<target>]
 *
 * <tree> is o (pristine), r (running) or n (new); a line "o -" says the
 * pristine /etc is unknown. Paths and targets are escaped as in manifests. */

static void
append_time (GString *s, gint64 sec, guint32 nsec)
{
  g_string_append_c (s, ' ');
  if (sec < 0)
    g_string_append_c (s, '-');
  manifest_text_append_number (s, '\0', sec < 0 ? -(guint64)sec : (guint64)sec, 10, 1);
  manifest_text_append_number (s, '.', nsec, 10, 9);
}

static void
append_tree (GString *s, char tag, const EtcTree *tree)
{
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, tree->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      const EtcEntry *e = value;
      g_string_append_c (s, tag);
      g_string_append_c (s, ' ');
      g_string_append_c (s, "fdl"[e->type]);
      manifest_text_append_number (s, ' ', e->mode, 8, 1);
      manifest_text_append_number (s, ' ', e->uid, 10, 1);
      manifest_text_append_number (s, ' ', e->gid, 10, 1);
      manifest_text_append_number (s, ' ', e->size, 10, 1);
      manifest_text_append_number (s, ' ', e->ino, 10, 1);
      append_time (s, e->mtime_sec, e->mtime_nsec);
      append_time (s, e->ctime_sec, e->ctime_nsec);
      manifest_text_append_hash (s, ' ', e->xattr_hash);
      manifest_text_append_hash (s, ' ', e->content_hash);
      g_string_append_c (s, ' ');
      manifest_text_append_escaped (s, e->path);
      if (e->target != NULL)
        {
          g_string_append_c (s, ' ');
          manifest_text_append_escaped (s, e->target);
        }
      g_string_append_c (s, '\n');
    }
}

char *
etc_merge_state_to_data (const EtcMergeState *state, gsize *ret_len)
{
  GString *s = g_string_sized_new (
      64
      + 200
            * (gsize)(etc_tree_count (state->running) + etc_tree_count (state->new_tree)
                      + (state->pristine ? etc_tree_count (state->pristine) : 0)));
  g_string_append (s, STATE_HEADER "\n");
  if (state->pristine == NULL)
    g_string_append (s, "o -\n");
  else
    append_tree (s, 'o', state->pristine);
  append_tree (s, 'r', state->running);
  append_tree (s, 'n', state->new_tree);
  *ret_len = s->len;
  return g_string_free (s, FALSE);
}

/* g_ascii_string_to_unsigned() without its locale-aware strtoull: this
 * runs six times per entry at every finalize. Digits only, at most @max. */
static gboolean
parse_number (const char *s, guint base, guint64 max, guint64 *ret)
{
  guint64 v = 0;
  if (*s == '\0')
    return FALSE;
  for (; *s != '\0'; s++)
    {
      guint d = (guint)(*s - '0');
      if (d >= base || v > (max - d) / base)
        return FALSE;
      v = v * base + d;
    }
  *ret = v;
  return TRUE;
}

static gboolean
parse_time (char *s, gint64 *ret_sec, guint32 *ret_nsec)
{
  char *dot = strchr (s, '.');
  guint64 nsec;
  if (dot == NULL)
    return FALSE;
  *dot = '\0';
  gboolean negative = *s == '-';
  guint64 sec;
  if (!parse_number (s + negative, 10, (guint64)G_MAXINT64, &sec)
      || !parse_number (dot + 1, 10, 999999999, &nsec))
    return FALSE;
  *ret_sec = negative ? -(gint64)sec : (gint64)sec;
  *ret_nsec = nsec;
  return TRUE;
}

static gboolean
parse_state_line (char *line, EtcMergeState *state)
{
  /* Split in place: this runs for every entry at every finalize. */
  char *f[14];
  guint n = manifest_text_split (line, f, G_N_ELEMENTS (f));
  if (n == G_N_ELEMENTS (f))
    return FALSE;
  if (n == 2 && strcmp (f[0], "o") == 0 && strcmp (f[1], "-") == 0)
    {
      g_clear_pointer (&state->pristine, etc_tree_free);
      return TRUE;
    }
  if (n != 12 && n != 13)
    return FALSE;
  EtcTree *tree = strcmp (f[0], "o") == 0   ? state->pristine
                  : strcmp (f[0], "r") == 0 ? state->running
                  : strcmp (f[0], "n") == 0 ? state->new_tree
                                            : NULL;
  const char *type = strchr ("fdl", f[1][0]);
  guint64 mode, uid, gid, size, ino;
  EtcEntry e = { 0 };
  g_autofree char *path = NULL;
  g_autofree char *target = NULL;
  if (tree == NULL || type == NULL || f[1][0] == '\0' || f[1][1] != '\0'
      || !parse_number (f[2], 8, 07777, &mode) || !parse_number (f[3], 10, G_MAXUINT32, &uid)
      || !parse_number (f[4], 10, G_MAXUINT32, &gid) || !parse_number (f[5], 10, G_MAXUINT64, &size)
      || !parse_number (f[6], 10, G_MAXUINT64, &ino)
      || !parse_time (f[7], &e.mtime_sec, &e.mtime_nsec)
      || !parse_time (f[8], &e.ctime_sec, &e.ctime_nsec)
      || !manifest_text_parse_hash (f[9], e.xattr_hash)
      || !manifest_text_parse_hash (f[10], e.content_hash) || !manifest_unescape_path (f[11], &path)
      || (n == 13) != (*type == 'l') || (n == 13 && !manifest_unescape_path (f[12], &target)))
    return FALSE;
  e.type = type - "fdl";
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  e.size = size;
  e.ino = ino;
  e.path = path;
  e.target = target;
  etc_tree_add (tree, &e);
  return TRUE;
}

gboolean
etc_merge_state_parse (const char *data, gsize len, const char *what, EtcMergeState **ret_state,
                       GError **error)
{
  if (memchr (data, '\0', len) != NULL)
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: it contains a NUL byte",
                        what);
  g_autofree char *copy = g_strndup (data, len);
  /* The last byte first: cutting the header's line changes it when the
   * header is all there is (an image with an empty /etc). */
  char *nl = strchr (copy, '\n');
  if (nl == NULL || copy[len - 1] != '\n' || (*nl = '\0', strcmp (copy, STATE_HEADER) != 0))
    return throw_error (
        error, STAGEHAND_ERROR_CORRUPT,
        "%s is corrupt: it does not start with \"" STATE_HEADER "\" or is cut short", what);
  g_autoptr (EtcMergeState) state = g_new0 (EtcMergeState, 1);
  state->pristine = etc_tree_new ();
  state->running = etc_tree_new ();
  state->new_tree = etc_tree_new ();
  guint lineno = 2;
  for (char *line = nl + 1; line < copy + len; line = nl + 1, lineno++)
    {
      nl = strchr (line, '\n');
      *nl = '\0';
      if (!parse_state_line (line, state))
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: line %u does not parse",
                            what, lineno);
    }
  *ret_state = g_steal_pointer (&state);
  return TRUE;
}

void
etc_merge_state_free (EtcMergeState *state)
{
  if (state == NULL)
    return;
  etc_tree_free (state->pristine);
  etc_tree_free (state->running);
  etc_tree_free (state->new_tree);
  g_free (state);
}

char *
etc_merge_display_path (const char *path)
{
  g_autofree char *escaped = manifest_escape_path (path);
  return g_strconcat ("/etc/", escaped, NULL);
}

/* The regular files of an imported tree: content, hash, manifest entry.
 *
 * Deduplication: given a reference deployment and its manifest, a regular
 * file whose metadata (size, mode, owner, mtime, extended attributes) and
 * content hash equal the reference's file at the same path is hard-linked
 * from the reference tree instead of written. The metadata is compared
 * first, from the entry header alone; only then is the content read and
 * hashed, and written only if the hash differs. Every regular file's hash
 * goes into the new tree's manifest. A hard-linked inode is shared by both
 * deployments, so the writer never writes into an inode it did not create
 * in this import (see the hard link with data in tree_writer_add()). Files
 * under etc/ are never linked: each deployment has its own /etc.
 */
#include "config.h"

#include "import-private.h"
#include "errors.h"
#include "fsutil.h"
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void
file_writer_init (FileWriter *fw)
{
  memset (fw, 0, sizeof *fw);
  fw->ref_parent_fd = -1;
}

void
file_writer_clear (FileWriter *fw)
{
  g_clear_pointer (&fw->buffer, g_free);
  g_clear_pointer (&fw->hash_state, XXH3_freeState);
  g_clear_pointer (&fw->content_hash, content_hash_free);
  g_clear_pointer (&fw->ref_parent_path, g_free);
  if (fw->ref_parent_fd >= 0)
    (void)close (fw->ref_parent_fd); /* O_PATH fd: nothing to report */
  fw->ref_parent_fd = -1;
}

guint8 *
file_writer_buffer (FileWriter *fw)
{
  if (fw->buffer == NULL)
    fw->buffer = g_malloc (IO_BUFFER_SIZE);
  return fw->buffer;
}

static XXH3_state_t *
file_writer_hash (FileWriter *fw)
{
  if (fw->hash_state == NULL)
    fw->hash_state = XXH3_createState ();
  g_assert (fw->hash_state != NULL);
  return fw->hash_state;
}

static void
progress_add (guint64 *counter, guint64 n)
{
  __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static void
tree_writer_record (TreeWriter *w, const ManifestEntry *entry)
{
  g_mutex_lock (&w->lock);
  manifest_set (w->manifest, entry);
  g_mutex_unlock (&w->lock);
}

static ContentHash *
file_writer_content_hash (FileWriter *fw)
{
  if (fw->content_hash == NULL)
    fw->content_hash = content_hash_new ();
  return fw->content_hash;
}

/* Hashes the first @size bytes of @fd. Holes are hashed as zeros without
 * reading them (SEEK_DATA/SEEK_HOLE; where those are not supported the
 * file is read whole). */
gboolean
file_writer_hash_fd (FileWriter *fw, int fd, guint64 size, ContentHash *hash, GError **error)
{
  guint8 *buf = file_writer_buffer (fw);
  gboolean seek_holes = TRUE;
  for (guint64 pos = 0; pos < size;)
    {
      guint64 end = size;
      if (seek_holes)
        {
          off_t data = lseek (fd, pos, SEEK_DATA);
          if (data < 0 && errno == ENXIO)
            data = size; /* only a hole left */
          else if (data < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
            {
              seek_holes = FALSE;
              continue;
            }
          else if (data < 0)
            return throw_errno (error, "looking for data");
          guint64 start = MIN ((guint64)data, size);
          content_hash_zeros (hash, start - pos);
          pos = start;
          if (pos == size)
            break;
          off_t hole = lseek (fd, pos, SEEK_HOLE);
          if (hole < 0)
            return throw_errno (error, "looking for holes");
          end = MIN ((guint64)hole, size);
        }
      while (pos < end)
        {
          gsize n = MIN (end - pos, (guint64)IO_BUFFER_SIZE);
          if (!import_pread_all (fd, buf, n, pos))
            return throw_errno (error, "reading");
          content_hash_update (hash, buf, n);
          pos += n;
        }
    }
  return TRUE;
}

static gint
compare_xattr_names (gconstpointer a, gconstpointer b)
{
  const XattrRef *x = *(const XattrRef *const *)a, *y = *(const XattrRef *const *)b;
  return strcmp (x->name, y->name);
}

/* The extended attributes given to the new file (see
 * tree_writer_xattr_settable()), hashed as xattr_hash_update() says. The
 * order of listxattr() is not stable, hence the sort. */
static void
hash_xattrs (TreeWriter *w, FileWriter *fw, const TreeEntry *e, guint8 *ret_digest)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (e->n_xattrs);
  for (guint i = 0; i < e->n_xattrs; i++)
    if (tree_writer_xattr_settable (w, e->xattrs[i].name))
      g_ptr_array_add (sorted, (gpointer)&e->xattrs[i]);
  g_ptr_array_sort (sorted, compare_xattr_names);
  XXH3_state_t *hash = file_writer_hash (fw);
  XXH3_128bits_reset (hash);
  for (guint i = 0; i < sorted->len; i++)
    {
      const XattrRef *x = sorted->pdata[i];
      xattr_hash_update (hash, x->name, x->value, x->len);
    }
  import_hash_digest (hash, ret_digest);
}

/* The metadata the new file will have: as written, not as in the image
 * (a non-root import owns everything and sets only some xattrs), since
 * that is what a hard-linked inode must match. */
static void
manifest_entry_init (TreeWriter *w, FileWriter *fw, const char *key, const TreeEntry *e,
                     ManifestEntry *ret_entry)
{
  *ret_entry = (ManifestEntry){
    .path = key,
    .size = e->size,
    .mode = e->perm,
    .uid = w->privileged ? e->uid : w->self_uid,
    .gid = w->privileged ? e->gid : w->self_gid,
    .mtime_sec = e->times[1].tv_sec,
    .mtime_nsec = e->times[1].tv_nsec,
  };
  hash_xattrs (w, fw, e, ret_entry->xattr_hash);
}

/* The reference's entry for @key if everything but the content matches:
 * only then is a link possible, and worth hashing for before writing. An
 * entry without an mtime gets the current time, so it never matches. */
static const ManifestEntry *
reference_candidate (TreeWriter *w, const TreeEntry *e, const ManifestEntry *me)
{
  if (w->ref_manifest == NULL || e->times[1].tv_nsec == UTIME_OMIT)
    return NULL;
  /* etc/ becomes the booted system's writable /etc (docs/design.md,
   * "Booting a deployment"): a file shared with another deployment would
   * carry every edit into that one too, the rollback deployment included.
   * Each deployment gets its own copy; the manifest still describes it. */
  if (g_str_has_prefix (me->path, "etc/"))
    return NULL;
  const ManifestEntry *ref = manifest_lookup (w->ref_manifest, me->path);
  if (ref == NULL || ref->type != MANIFEST_TYPE_FILE || ref->size != me->size
      || ref->mode != me->mode || ref->uid != me->uid || ref->gid != me->gid
      || ref->mtime_sec != me->mtime_sec || ref->mtime_nsec != me->mtime_nsec
      || memcmp (ref->xattr_hash, me->xattr_hash, MANIFEST_HASH_LEN) != 0)
    return NULL;
  return ref;
}

/* The reference directory holding @key, as an O_PATH fd owned by the
 * writer, or -1. openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH) resolves the
 * whole path in one call and refuses a symlink anywhere on it: a manifest
 * path leads to a file inside the reference tree or nowhere. */
static int
reference_parent_fd (TreeWriter *w, FileWriter *fw, const char *key)
{
  const char *slash = strrchr (key, '/');
  if (slash == NULL)
    return w->ref_dfd;
  gsize len = slash - key;
  if (fw->ref_parent_path != NULL && strlen (fw->ref_parent_path) == len
      && memcmp (fw->ref_parent_path, key, len) == 0)
    return fw->ref_parent_fd;
  g_free (fw->ref_parent_path);
  if (fw->ref_parent_fd >= 0)
    (void)close (fw->ref_parent_fd); /* O_PATH fd: nothing to report */
  fw->ref_parent_path = g_strndup (key, len);
  struct open_how how = {
    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  /* A failure (ENOENT; ENOSYS before Linux 5.6) only means no link. */
  fw->ref_parent_fd = syscall (SYS_openat2, w->ref_dfd, fw->ref_parent_path, &how, sizeof how);
  return fw->ref_parent_fd;
}

/* Two files of the image must never become one inode because their
 * counterparts in the reference are hard links of each other (or the same
 * file linked twice before): each reference inode is linked into the new
 * tree at most once. The image's own hard links are made by the writer from
 * the image's structure, not through the reference. */
static gboolean
claim_reference_inode (TreeWriter *w, ino_t ino)
{
  gint64 key = ino;
  g_mutex_lock (&w->ref_linked_lock);
  gboolean fresh = !g_hash_table_contains (w->ref_linked, &key);
  if (fresh)
    g_hash_table_add (w->ref_linked, g_memdup2 (&key, sizeof key));
  g_mutex_unlock (&w->ref_linked_lock);
  return fresh;
}

/* Hard-links the reference's file for @ref as @name below @parent_fd.
 * FALSE (no error) when that cannot be done: the caller writes the file. */
static gboolean
reference_link (TreeWriter *w, FileWriter *fw, const ManifestEntry *ref, int parent_fd,
                const char *name)
{
  int ref_parent = reference_parent_fd (w, fw, ref->path);
  if (ref_parent < 0)
    return FALSE;
  const char *slash = strrchr (ref->path, '/');
  const char *base = slash != NULL ? slash + 1 : ref->path;
  /* The manifest vouches for the content (re-reading old trees is what it
   * saves), but the inode must still be what it describes, or a manifest
   * out of step with its tree would put a wrong file into a new deployment. */
  struct stat st;
  if (fstatat (ref_parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode)
      || (guint64)st.st_size != ref->size || (st.st_mode & 07777) != ref->mode
      || st.st_uid != ref->uid || st.st_gid != ref->gid || st.st_mtim.tv_sec != ref->mtime_sec
      || (guint32)st.st_mtim.tv_nsec != ref->mtime_nsec || !claim_reference_inode (w, st.st_ino))
    return FALSE;
  /* EMLINK (ext4 caps an inode at 65000 names), EPERM (fs.protected_hardlinks
   * for a file the caller does not own), ...: write the file instead. */
  return linkat (ref_parent, base, parent_fd, name, 0) == 0;
}

/* Replaces the file just written as @name by a link to the reference's
 * equal file; best effort (FALSE keeps the written file). */
static gboolean
reference_relink (TreeWriter *w, FileWriter *fw, const ManifestEntry *ref, int parent_fd,
                  const char *name)
{
  g_autofree char *tmp = fs_temp_name ("link");
  if (!reference_link (w, fw, ref, parent_fd, tmp))
    return FALSE;
  if (renameat (parent_fd, tmp, parent_fd, name) < 0)
    {
      (void)unlinkat (parent_fd, tmp, 0); /* best effort: the written file stays */
      return FALSE;
    }
  return TRUE;
}

static void
count_linked (TreeWriter *w, guint64 size)
{
  progress_add (&w->progress.linked_files, 1);
  progress_add (&w->progress.linked_bytes, size);
}

/* Creates @name and writes the entry into it, feeding @hash unless NULL.
 * With @me, an unknown mtime is filled in from the file. */
static gboolean
create_regular_file (TreeWriter *w, int parent_fd, const char *name, const char *path,
                     const TreeEntry *e, ContentHash *hash, ManifestEntry *me, GError **error)
{
  autofd fd = openat (parent_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return import_throw_entry_errno (error, path, "creating file");
  guint64 bytes = 0;
  gboolean ok
      = e->content == NULL || e->content->write (e->content_data, fd, e->size, hash, &bytes, error);
  progress_add (&w->progress.bytes, bytes);
  if (!ok)
    return import_prefix_entry_error (error, path);
  if (!tree_writer_apply_fd_metadata (w, fd, path, e, error))
    return FALSE;
  tree_writer_queue_writeback (w, fd, bytes);
  if (me != NULL && e->times[1].tv_nsec == UTIME_OMIT)
    {
      struct stat st;
      if (fstat (fd, &st) < 0)
        return import_throw_entry_errno (error, path, "reading the new file");
      me->mtime_sec = st.st_mtim.tv_sec;
      me->mtime_nsec = st.st_mtim.tv_nsec;
    }
  return TRUE;
}

/* A regular file: linked from the reference when equal to its file at the
 * same path, written otherwise; recorded in the manifest either way. */
gboolean
tree_writer_write_regular_file (TreeWriter *w, FileWriter *fw, int parent_fd, const char *name,
                                const char *key, const char *path, const TreeEntry *e,
                                GError **error)
{
  if (w->manifest == NULL)
    return create_regular_file (w, parent_fd, name, path, e, NULL, NULL, error);

  ManifestEntry me;
  manifest_entry_init (w, fw, key, e, &me);
  const ManifestEntry *ref = reference_candidate (w, e, &me);
  ContentHash *hash = file_writer_content_hash (fw);
  content_hash_reset (hash);
  if (ref != NULL)
    {
      /* Hash first, write only if different: an unchanged file is read once
       * and never written. */
      gboolean kept = TRUE;
      if (e->content != NULL && !e->content->hash (e->content_data, e->size, hash, &kept, error))
        return import_prefix_entry_error (error, path);
      if (kept)
        {
          content_hash_digest (hash, me.content_hash);
          if (memcmp (me.content_hash, ref->content_hash, MANIFEST_HASH_LEN) == 0
              && reference_link (w, fw, ref, parent_fd, name))
            {
              progress_add (&w->progress.bytes, e->size);
              count_linked (w, e->size);
            }
          else if (!create_regular_file (w, parent_fd, name, path, e, NULL, &me, error))
            return FALSE;
          tree_writer_record (w, &me);
          return TRUE;
        }
    }

  /* Hashed while written; a large tar entry that turns out equal is then
   * replaced by a link (its blocks are freed before they reach the disk). */
  if (!create_regular_file (w, parent_fd, name, path, e, hash, &me, error))
    return FALSE;
  content_hash_digest (hash, me.content_hash);
  if (ref != NULL && memcmp (me.content_hash, ref->content_hash, MANIFEST_HASH_LEN) == 0
      && reference_relink (w, fw, ref, parent_fd, name))
    count_linked (w, e->size);
  tree_writer_record (w, &me);
  return TRUE;
}

/* The tar source of an import: the entries of a stream read by
 * libarchive, each handed to the tree writer.
 */
#include "config.h"

#include "import-private.h"
#include "errors.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* libarchive reports an unrecognised format or an unconvertible name with
 * this errno (archive_private.h: EFTYPE where it exists, else EILSEQ); the
 * public header does not export the name. */
#ifdef EFTYPE
#define IMPORT_ARCHIVE_ERRNO_FILE_FORMAT EFTYPE
#else
#define IMPORT_ARCHIVE_ERRNO_FILE_FORMAT EILSEQ
#endif

/* A tar entry that may be shared with the reference is held in memory while
 * it is hashed, so that it is written only if it differs; larger ones are
 * written while hashed and replaced by a link if they turn out equal. */
#define TAR_HOLD_MAX (16 * 1024 * 1024)

/* Regular files up to this size are read ahead into memory and written by
 * the workers, while this thread goes on reading the stream; larger ones
 * are written here, straight from libarchive's buffers. */
#define TAR_JOB_MAX (4 * 1024 * 1024)

typedef struct
{
  int64_t offset;
  size_t len;
} Extent;

/* An entry's data in memory (the bytes at their offsets; the gaps are
 * never touched) and where its data blocks are, so that writing it keeps
 * the holes. */
typedef struct
{
  guint8 *data;
  gsize capacity;
  GArray *extents; /* Extent */
} TarHeld;

static void
tar_held_init (TarHeld *h)
{
  *h = (TarHeld){ .extents = g_array_new (FALSE, FALSE, sizeof (Extent)) };
}

static void
tar_held_clear (TarHeld *h)
{
  g_clear_pointer (&h->data, g_free);
  g_clear_pointer (&h->extents, g_array_unref);
}

static void
tar_held_free (gpointer p)
{
  tar_held_clear (p);
  g_free (p);
}

typedef struct
{
  struct archive *archive;
  const char *image_path;
  TreeWriter *w;
  /* The entry held by tar_hash(), when held is set. */
  TarHeld hold;
  gboolean held;
} TarSource;

static void
tar_source_clear (TarSource *src)
{
  tar_held_clear (&src->hold);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (TarSource, tar_source_clear)

static void
archive_read_freep (struct archive **ap)
{
  if (*ap != NULL)
    (void)archive_read_free (*ap); /* only fails for a wrong handle */
}

static gboolean
throw_archive (GError **error, const TarSource *src)
{
  const char *msg = archive_error_string (src->archive);
  return throw_error (error, STAGEHAND_ERROR_INVALID, "reading image %s: %s", src->image_path,
                      msg ? msg : "unknown libarchive error");
}

/* The entry's next data block and its offset; *ret_eof at the end. */
static gboolean
tar_next_block (TarSource *src, const void **ret_buf, size_t *ret_len, guint64 *ret_offset,
                gboolean *ret_eof, GError **error)
{
  la_int64_t offset;
  int r = archive_read_data_block (src->archive, ret_buf, ret_len, &offset);
  *ret_eof = r == ARCHIVE_EOF;
  if (*ret_eof)
    return TRUE;
  if (r != ARCHIVE_OK)
    return throw_archive (error, src);
  if (offset < 0)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "reading image %s: data block at a negative offset", src->image_path);
  *ret_offset = offset;
  return TRUE;
}

/* Hashes the held entry from its extents, the gaps as holes: only what the
 * tar stores is touched, not the size it claims (a sparse entry claiming
 * 16 MiB costs its data, not a 16 MiB pass). Extents out of order (never
 * seen from libarchive) are laid out in a zeroed copy first. */
static void
tar_held_hash (const TarHeld *h, guint64 size, ContentHash *hash)
{
  guint64 pos = 0;
  for (guint i = 0; i < h->extents->len; i++)
    {
      const Extent *x = &g_array_index (h->extents, Extent, i);
      if ((guint64)x->offset < pos)
        {
          g_autofree guint8 *flat = g_malloc0 (size);
          for (guint j = 0; j < h->extents->len; j++)
            {
              const Extent *y = &g_array_index (h->extents, Extent, j);
              memcpy (flat + y->offset, h->data + y->offset, y->len);
            }
          content_hash_reset (hash);
          content_hash_update (hash, flat, size);
          return;
        }
      content_hash_zeros (hash, x->offset - pos);
      content_hash_update (hash, h->data + x->offset, x->len);
      pos = x->offset + x->len;
    }
  content_hash_zeros (hash, size - pos);
}

/* Reads the current entry's data (@size bytes at most: data beyond the
 * size is cut off, as set_size() does for a written file) into @h. */
static gboolean
tar_held_read (TarSource *src, TarHeld *h, guint64 size, GError **error)
{
  if (h->capacity < size)
    {
      g_free (h->data);
      h->data = g_malloc (size);
      h->capacity = size;
    }
  g_array_set_size (h->extents, 0);
  for (;;)
    {
      const void *buf;
      size_t len;
      guint64 offset;
      gboolean eof;
      if (!tar_next_block (src, &buf, &len, &offset, &eof, error))
        return FALSE;
      if (eof)
        return TRUE;
      if (offset >= size)
        continue;
      len = MIN (len, size - offset);
      memcpy (h->data + offset, buf, len);
      Extent x = { offset, len };
      g_array_append_val (h->extents, x);
    }
}

/* Reads the entry's data into memory and hashes it, if it is small enough
 * to hold; a large one is left in the stream for tar_copy_content(). */
static gboolean
tar_hash (gpointer data, guint64 size, ContentHash *hash, gboolean *ret_kept, GError **error)
{
  TarSource *src = data;
  if (size > TAR_HOLD_MAX)
    {
      *ret_kept = FALSE;
      return TRUE;
    }
  if (!tar_held_read (src, &src->hold, size, error))
    return FALSE;
  tar_held_hash (&src->hold, size, hash);
  src->held = TRUE;
  *ret_kept = TRUE;
  return TRUE;
}

/* Makes the new file @fd, whose data ends at @end, @size bytes long: a
 * hole at the end, or data beyond the size cut off. A file written up to
 * its size needs no truncate, which costs a metadata update of its own
 * (5% of a tar import's CPU time). */
static gboolean
set_size (int fd, guint64 end, guint64 size, GError **error)
{
  if (end != size && ftruncate (fd, size) < 0)
    return throw_errno (error, "setting the size");
  return TRUE;
}

static gboolean
tar_held_write (const TarHeld *h, int fd, guint64 size, guint64 *bytes, GError **error)
{
  guint64 end = 0;
  for (guint i = 0; i < h->extents->len; i++)
    {
      const Extent *x = &g_array_index (h->extents, Extent, i);
      if (!import_pwrite_all (fd, h->data + x->offset, x->len, x->offset))
        return throw_errno (error, "writing");
      *bytes += x->len;
      end = MAX (end, x->offset + x->len);
    }
  return set_size (fd, end, size, error);
}

/* The content of an entry read ahead for a worker: a TarHeld of its own. */
static gboolean
job_hash (gpointer data, guint64 size, ContentHash *hash, gboolean *ret_kept, GError **error)
{
  tar_held_hash (data, size, hash);
  *ret_kept = TRUE;
  return TRUE;
}

static gboolean
job_write (gpointer data, int fd, guint64 size, ContentHash *hash, guint64 *bytes, GError **error)
{
  if (hash != NULL)
    tar_held_hash (data, size, hash);
  return tar_held_write (data, fd, size, bytes, error);
}

/* libarchive hands out the data blocks of an entry with their offsets; a
 * sparse entry's holes are the gaps between them, so writing each block at its
 * offset and truncating to the full size leaves holes as holes. The hash is
 * fed as the blocks stream by, zeros for the gaps; only blocks out of order
 * (never seen from libarchive) make it read the file back. */
static gboolean
tar_copy_content (gpointer data, int fd, guint64 size, ContentHash *hash, guint64 *bytes,
                  GError **error)
{
  TarSource *src = data;
  if (src->held)
    {
      src->held = FALSE;
      return tar_held_write (&src->hold, fd, size, bytes, error);
    }

  guint64 hashed = 0, end = 0;
  gboolean in_order = TRUE;
  for (;;)
    {
      const void *buf;
      size_t len;
      guint64 offset;
      gboolean eof;
      if (!tar_next_block (src, &buf, &len, &offset, &eof, error))
        return FALSE;
      if (eof)
        break;
      if (!import_pwrite_all (fd, buf, len, offset))
        return throw_errno (error, "writing");
      *bytes += len;
      end = MAX (end, offset + len);
      if (hash == NULL || !in_order || offset >= size)
        continue;
      if (offset < hashed)
        {
          in_order = FALSE;
          continue;
        }
      gsize n = MIN (len, size - offset);
      content_hash_zeros (hash, offset - hashed);
      content_hash_update (hash, buf, n);
      hashed = offset + n;
    }
  if (!set_size (fd, end, size, error))
    return FALSE;
  if (hash != NULL && in_order)
    content_hash_zeros (hash, size - hashed);
  else if (hash != NULL)
    {
      content_hash_reset (hash);
      return file_writer_hash_fd (&src->w->main, fd, size, hash, error);
    }
  return TRUE;
}

/* Reads a small regular file's data now and hands the entry to the
 * workers (through the writer, which checks it first), with copies of what
 * lives only until the next header. The workers write it, hashed, while
 * this thread reads on: both cores work on a tar image too. */
static gboolean
submit_tar_job (TreeWriter *w, TarSource *src, const char *path, const TreeEntry *e, GError **error)
{
  TarHeld *held = g_new (TarHeld, 1);
  tar_held_init (held);
  if (!tar_held_read (src, held, e->size, error))
    {
      tar_held_free (held);
      return import_prefix_entry_error (error, path);
    }
  XattrList xattrs;
  xattr_list_init (&xattrs);
  for (guint i = 0; i < e->n_xattrs; i++)
    xattr_list_add (&xattrs, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len);
  static const ContentOps job_ops = { job_hash, job_write };
  FileJob *job = file_job_new_held (e, &xattrs, &job_ops, held, tar_held_free, e->size);
  xattr_list_clear (&xattrs);
  return tree_writer_add (w, path, &job->e, job, error);
}

static gboolean
tar_entry_id (const char *path, const char *what, la_int64_t value, guint32 *ret_id, GError **error)
{
  /* (uid_t)-1 means "leave unchanged" to chown(): not a valid owner. */
  if (value < 0 || value >= (la_int64_t)G_MAXUINT32)
    return import_throw_entry (error, path, "%s %" G_GINT64_FORMAT " is out of range", what,
                               (gint64)value);
  *ret_id = (guint32)value;
  return TRUE;
}

/* libarchive warns when it cannot convert a pax (UTF-8) name to the current
 * locale and then keeps the bytes as stored: that is the byte-for-byte name
 * we want, so that one warning is not an error. Every other warning is (a
 * malformed pax header can lose the real name or size of an entry). */
static gboolean
is_name_conversion_warning (struct archive *a)
{
  const char *msg = archive_error_string (a);
  return archive_errno (a) == IMPORT_ARCHIVE_ERRNO_FILE_FORMAT && msg != NULL
         && strstr (msg, "can't be converted") != NULL;
}

static gboolean
import_tar_entry (TreeWriter *w, TarSource *src, struct archive_entry *entry, GError **error)
{
  const char *path = archive_entry_pathname (entry);
  if (path == NULL)
    return throw_error (error, STAGEHAND_ERROR_INVALID, "reading image %s: an entry has no name",
                        src->image_path);

  TreeEntry e = { .perm = archive_entry_perm (entry) & 07777 };
  if (!tar_entry_id (path, "owner", archive_entry_uid (entry), &e.uid, error)
      || !tar_entry_id (path, "group", archive_entry_gid (entry), &e.gid, error))
    return FALSE;
  e.times[0].tv_nsec = UTIME_OMIT;
  e.times[1].tv_nsec = UTIME_OMIT;
  if (archive_entry_atime_is_set (entry))
    e.times[0] = (struct timespec){ archive_entry_atime (entry), archive_entry_atime_nsec (entry) };
  if (archive_entry_mtime_is_set (entry))
    e.times[1] = (struct timespec){ archive_entry_mtime (entry), archive_entry_mtime_nsec (entry) };
  la_int64_t size = archive_entry_size_is_set (entry) ? archive_entry_size (entry) : 0;
  e.size = MAX (size, 0);

  e.hardlink_target = archive_entry_hardlink (entry);
  if (e.hardlink_target != NULL)
    e.type = NODE_FILE; /* the writer takes the type of the target */
  else
    switch (archive_entry_filetype (entry))
      {
      case AE_IFREG:
        e.type = NODE_FILE;
        break;
      case AE_IFDIR:
        e.type = NODE_DIR;
        break;
      case AE_IFLNK:
        e.type = NODE_SYMLINK;
        e.symlink_target = archive_entry_symlink (entry);
        break;
      case AE_IFIFO:
        e.type = NODE_FIFO;
        break;
      case AE_IFCHR:
        e.type = NODE_CHAR_DEVICE;
        break;
      case AE_IFBLK:
        e.type = NODE_BLOCK_DEVICE;
        break;
      case AE_IFSOCK:
        e.type = NODE_SOCKET;
        break;
      default:
        e.type = NODE_UNKNOWN;
        break;
      }
  static const ContentOps tar_ops = { tar_hash, tar_copy_content };
  src->held = FALSE;
  if (e.type == NODE_FILE && (e.hardlink_target == NULL || e.size > 0))
    {
      e.content = &tar_ops;
      e.content_data = src;
    }

  /* pax SCHILY.xattr.* and LIBARCHIVE.xattr.* records, as GNU tar --xattrs
   * and bsdtar write them; the pointers live until the next header. */
  g_autoptr (GArray) xattrs = g_array_new (FALSE, FALSE, sizeof (XattrRef));
  archive_entry_xattr_reset (entry);
  XattrRef x;
  while (archive_entry_xattr_next (entry, &x.name, &x.value, &x.len) == ARCHIVE_OK)
    g_array_append_val (xattrs, x);
  e.xattrs = (const XattrRef *)xattrs->data;
  e.n_xattrs = xattrs->len;

  if (e.content != NULL && e.hardlink_target == NULL && e.size <= TAR_JOB_MAX && w->n_workers > 0)
    return submit_tar_job (w, src, path, &e, error);
  return tree_writer_add (w, path, &e, NULL, error);
}

static gboolean
import_tar_entries (TreeWriter *w, int image_fd, const char *image_path, GError **error)
{
  __attribute__ ((cleanup (archive_read_freep))) struct archive *a = archive_read_new ();
  if (a == NULL)
    return throw_error (error, STAGEHAND_ERROR_FAILED, "reading image %s: out of memory",
                        image_path);
  g_auto (TarSource) src = {
    .archive = a,
    .image_path = image_path,
    .w = w,
  };
  tar_held_init (&src.hold);
  if (archive_read_support_filter_all (a) != ARCHIVE_OK
      || archive_read_support_format_tar (a) != ARCHIVE_OK)
    return throw_archive (error, &src);

  /* A stream: libarchive reads the fd front to back, so a FIFO works. */
  if (archive_read_open_fd (a, image_fd, IO_BUFFER_SIZE) != ARCHIVE_OK)
    {
      const char *msg = archive_error_string (a);
      if (archive_errno (a) == IMPORT_ARCHIVE_ERRNO_FILE_FORMAT)
        return throw_error (error, STAGEHAND_ERROR_INVALID,
                            "reading image %s: not a tar archive (%s)", image_path,
                            msg ? msg : "unknown format");
      return throw_archive (error, &src);
    }

  tree_writer_start_workers (w);
  for (;;)
    {
      struct archive_entry *entry;
      int r = archive_read_next_header (a, &entry);
      if (r == ARCHIVE_EOF)
        break;
      if (r != ARCHIVE_OK && !(r == ARCHIVE_WARN && is_name_conversion_warning (a)))
        return throw_archive (error, &src);
      if (!import_tar_entry (w, &src, entry, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
import_tar (TreeWriter *w, int image_fd, const char *image_path, GError **error)
{
  /* libarchive converts pax names (UTF-8 by definition) to the charset of
   * the current locale. In the C locale that fails for any non-ASCII byte and
   * libarchive keeps the stored bytes, exactly what a byte-for-byte copy
   * needs; in, say, a Latin-1 locale it would silently re-encode names. So the
   * archive is read under the C locale, whatever the process uses
   * (uselocale() is per thread). */
  locale_t c_locale = newlocale (LC_ALL_MASK, "C", (locale_t)0);
  if (c_locale == (locale_t)0)
    return throw_errno (error, "reading image %s: creating the C locale", image_path);
  locale_t previous = uselocale (c_locale);
  gboolean ok = import_tar_entries (w, image_fd, image_path, error);
  uselocale (previous);
  freelocale (c_locale);
  return ok;
}

/* The directory source of an import: the image tree walked with fds,
 * each entry handed to the tree writer; regular files go to its workers.
 */
#include "config.h"

#include "import-private.h"
#include "errors.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void
xattr_list_init (XattrList *l)
{
  l->refs = g_array_new (FALSE, FALSE, sizeof (XattrRef));
  l->storage = g_ptr_array_new_with_free_func (g_free);
}

void
xattr_list_clear (XattrList *l)
{
  g_clear_pointer (&l->refs, g_array_unref);
  g_clear_pointer (&l->storage, g_ptr_array_unref);
}

static void
xattr_list_take (XattrList *l, char *name, void *value, size_t len)
{
  XattrRef ref = { name, value, len };
  g_ptr_array_add (l->storage, name);
  g_ptr_array_add (l->storage, value);
  g_array_append_val (l->refs, ref);
}

void
xattr_list_add (XattrList *l, const char *name, const void *value, size_t len)
{
  xattr_list_take (l, g_strdup (name), g_memdup2 (value, MAX (len, 1)), len);
}

/* Sizes can change between the query and the read (ERANGE): retry a few
 * times, never forever. */
#define XATTR_READ_ATTEMPTS 8

static gboolean
read_source_xattrs (int fd, int dfd, const char *name, const char *path, XattrList *list,
                    GError **error)
{
  g_autofree char *names = NULL;
  ssize_t names_len = -1;
  for (guint attempt = 0; names_len < 0; attempt++)
    {
      ssize_t size = import_listxattr (fd, dfd, name, NULL, 0);
      if (size < 0 && (errno == ENOTSUP || errno == ENOSYS))
        return TRUE; /* no xattrs on this filesystem, or symlink xattrs on an old kernel */
      if (size < 0)
        return import_throw_entry_errno (error, path, "listing extended attributes");
      if (size == 0)
        return TRUE;
      g_free (names);
      names = g_malloc (size);
      names_len = import_listxattr (fd, dfd, name, names, size);
      if (names_len < 0 && (errno != ERANGE || attempt + 1 >= XATTR_READ_ATTEMPTS))
        return import_throw_entry_errno (error, path, "listing extended attributes");
    }

  for (const char *key = names; key < names + names_len; key += strlen (key) + 1)
    {
      g_autofree void *value = NULL;
      ssize_t len = -1;
      for (guint attempt = 0; len < 0; attempt++)
        {
          ssize_t size = import_getxattr (fd, dfd, name, key, NULL, 0);
          if (size >= 0)
            {
              g_free (value);
              value = g_malloc (MAX (size, 1));
              len = import_getxattr (fd, dfd, name, key, value, size);
            }
          if (len < 0 && (size < 0 || errno != ERANGE || attempt + 1 >= XATTR_READ_ATTEMPTS))
            break;
        }
      if (len < 0 && errno == ENODATA)
        continue; /* removed since listed */
      if (len < 0)
        {
          g_autofree char *what = g_strdup_printf ("reading extended attribute %s", key);
          return import_throw_entry_errno (error, path, what);
        }
      xattr_list_take (list, g_strdup (key), g_steal_pointer (&value), len);
    }
  return TRUE;
}

typedef struct
{
  dev_t dev;
  ino_t ino;
} InodeKey;

static guint
inode_key_hash (gconstpointer p)
{
  const InodeKey *k = p;
  return (guint)(k->ino ^ (k->ino >> 32)) ^ (guint)k->dev;
}

static gboolean
inode_key_equal (gconstpointer a, gconstpointer b)
{
  const InodeKey *x = a, *y = b;
  return x->dev == y->dev && x->ino == y->ino;
}

typedef struct
{
  TreeWriter *w;
  struct stat dest_st; /* the destination: an image containing it is refused */
  GHashTable *links;   /* InodeKey -> path of the first link written */
  GString *path;       /* the current entry's path, for messages and the writer */
} DirSource;

/* Copies @len bytes at @offset: copy_file_range lets the kernel move the data
 * without a trip through userspace; read/write where it cannot (other
 * filesystems on old kernels, special files). */
static gboolean
copy_range (FileWriter *fw, int src_fd, int dest_fd, off_t offset, off_t len, guint64 *bytes,
            GError **error)
{
  gboolean use_cfr = TRUE;
  while (len > 0)
    {
      ssize_t n;
      if (use_cfr)
        {
          off_t in = offset, out = offset;
          n = copy_file_range (src_fd, &in, dest_fd, &out, len, 0);
          if (n < 0
              && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
            {
              use_cfr = FALSE;
              continue;
            }
        }
      else
        {
          guint8 *buf = file_writer_buffer (fw);
          n = pread (src_fd, buf, MIN ((off_t)IO_BUFFER_SIZE, len), offset);
          for (ssize_t done = 0; n > 0 && done < n;)
            {
              ssize_t m = pwrite (dest_fd, buf + done, n - done, offset + done);
              if (m < 0 && errno == EINTR)
                continue;
              if (m < 0)
                return throw_errno (error, "writing");
              done += m;
            }
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "copying");
      if (n == 0)
        return throw_error (error, STAGEHAND_ERROR_FAILED, "copying: file shrank while importing");
      offset += n;
      len -= n;
      *bytes += n;
    }
  return TRUE;
}

/* Reads the file once for its hash. A small one stays in the writer's
 * buffer, so writing it needs no second read; a larger one is copied from
 * the page cache the read just filled. */
static gboolean
copy_hash (gpointer data, guint64 size, ContentHash *hash, gboolean *ret_kept, GError **error)
{
  FileCopy *c = data;
  *ret_kept = TRUE;
  c->held = FALSE;
  if (size > IO_BUFFER_SIZE || c->sparse)
    return file_writer_hash_fd (c->fw, c->fd, size, hash, error);
  guint8 *buf = file_writer_buffer (c->fw);
  if (!import_pread_all (c->fd, buf, size, 0))
    return throw_errno (error, "reading");
  content_hash_update (hash, buf, size);
  c->held = TRUE;
  return TRUE;
}

static gboolean
copy_from_fd (gpointer data, int dest_fd, guint64 size, ContentHash *hash, guint64 *bytes,
              GError **error)
{
  FileCopy *c = data;
  gboolean kept;
  if (hash != NULL && !copy_hash (data, size, hash, &kept, error))
    return FALSE;
  if (size == 0)
    return TRUE;

  /* A reflink shares the extents (and the holes) and costs nothing. */
  if (g_atomic_int_get (&c->w->try_clone))
    {
      if (ioctl (dest_fd, FICLONE, c->fd) == 0)
        {
          *bytes += size;
          return TRUE;
        }
      if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV || errno == ENOSYS)
        g_atomic_int_set (&c->w->try_clone, FALSE); /* not this filesystem pair: don't ask again */
    }

  if (c->held)
    {
      c->held = FALSE;
      if (!import_pwrite_all (dest_fd, file_writer_buffer (c->fw), size, 0))
        return throw_errno (error, "writing");
      *bytes += size;
      return TRUE;
    }

  gboolean sparse = c->sparse;
  off_t pos = 0;
  while (sparse && pos < (off_t)size)
    {
      /* Copy only the data extents, so holes stay holes. */
      off_t data_start = lseek (c->fd, pos, SEEK_DATA);
      if (data_start < 0 && errno == ENXIO)
        break; /* only a hole left */
      if (data_start < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
        {
          sparse = FALSE; /* no SEEK_DATA here: copy the rest as it is */
          break;
        }
      if (data_start < 0)
        return throw_errno (error, "looking for data");
      if (data_start >= (off_t)size)
        break;
      off_t hole = lseek (c->fd, data_start, SEEK_HOLE);
      if (hole < 0)
        return throw_errno (error, "looking for holes");
      hole = MIN (hole, (off_t)size);
      if (!copy_range (c->fw, c->fd, dest_fd, data_start, hole - data_start, bytes, error))
        return FALSE;
      pos = hole;
    }
  if (!sparse)
    return copy_range (c->fw, c->fd, dest_fd, pos, size - pos, bytes, error);
  /* A hole at the end has no data to copy: only the size makes it. */
  if (ftruncate (dest_fd, size) < 0)
    return throw_errno (error, "setting the size");
  return TRUE;
}

static const ContentOps copy_ops = { copy_hash, copy_from_fd };

static int
open_source (int dfd, const char *name, gboolean directory)
{
  /* O_NOATIME: importing should not touch the image. Only the owner (or
   * root) may use it, hence the retry. O_NONBLOCK: if the entry became a FIFO
   * since readdir, the open must not hang. */
  int flags
      = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (directory ? O_DIRECTORY : 0);
  int fd = openat (dfd, name, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM)
    fd = openat (dfd, name, flags);
  return fd;
}

typedef struct
{
  char *name;
  unsigned char type;
  ino_t ino;
} DirListing;

static void
dir_listing_clear (gpointer p)
{
  g_free (((DirListing *)p)->name);
}

static gint
dir_listing_compare_ino (gconstpointer a, gconstpointer b)
{
  const DirListing *x = a, *y = b;
  return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static gboolean
list_source_directory (int dfd, const char *path, GArray **ret_listing, GError **error)
{
  int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd < 0)
    return import_throw_entry_errno (error, path, "duplicating a directory fd");
  DIR *d = fdopendir (dup_fd);
  if (d == NULL)
    {
      int errsv = errno;
      (void)close (dup_fd); /* read-only fd: nothing to report */
      errno = errsv;
      return import_throw_entry_errno (error, path, "listing directory");
    }
  g_autoptr (GArray) listing = g_array_new (FALSE, FALSE, sizeof (DirListing));
  g_array_set_clear_func (listing, dir_listing_clear);
  struct dirent *de;
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      DirListing l = { g_strdup (de->d_name), de->d_type, de->d_ino };
      g_array_append_val (listing, l);
    }
  int errsv = errno;
  closedir (d);
  if (errsv != 0)
    {
      errno = errsv;
      return import_throw_entry_errno (error, path, "listing directory");
    }
  /* Inode order reads a cold ext4/xfs tree far faster than hash order. */
  g_array_sort (listing, dir_listing_compare_ino);
  *ret_listing = g_steal_pointer (&listing);
  return TRUE;
}

/* readlinkat() into a buffer grown until the target fits (st_size can be
 * 0 on some filesystems, or stale). Sets errno on failure. */
static gboolean
read_symlink_at (int dfd, const char *name, off_t size_hint, char **ret_target)
{
  gsize size = MAX (size_hint, 63) + 1;
  for (guint attempt = 0; attempt < 8; attempt++, size *= 4)
    {
      g_autofree char *buf = g_malloc (size);
      ssize_t n = readlinkat (dfd, name, buf, size);
      if (n < 0)
        return FALSE;
      if ((gsize)n < size)
        {
          buf[n] = '\0';
          *ret_target = g_steal_pointer (&buf);
          return TRUE;
        }
    }
  errno = ENAMETOOLONG;
  return FALSE;
}

static gboolean import_source_children (DirSource *src, int dfd, GError **error);

static gboolean
import_source_entry (DirSource *src, int dfd, const DirListing *ent, GError **error)
{
  const char *path = src->path->str;
  struct stat st;
  autofd fd = -1;
  unsigned char dtype = ent->type;
  if (dtype != DT_REG && dtype != DT_DIR)
    {
      if (fstatat (dfd, ent->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return import_throw_entry_errno (error, path, "reading the entry");
      dtype = IFTODT (st.st_mode);
    }
  if (dtype == DT_REG || dtype == DT_DIR)
    {
      /* What we read is what the fd refers to: the stat comes from it. */
      fd = open_source (dfd, ent->name, dtype == DT_DIR);
      if (fd < 0)
        return import_throw_entry_errno (error, path, "opening the entry");
      if (fstat (fd, &st) < 0)
        return import_throw_entry_errno (error, path, "reading the entry");
    }

  TreeEntry e = {
    .perm = st.st_mode & 07777,
    .uid = st.st_uid,
    .gid = st.st_gid,
    .times = { st.st_atim, st.st_mtim },
    .size = S_ISREG (st.st_mode) ? st.st_size : 0,
  };
  switch (st.st_mode & S_IFMT)
    {
    case S_IFDIR:
      e.type = NODE_DIR;
      break;
    case S_IFREG:
      e.type = NODE_FILE;
      break;
    case S_IFLNK:
      e.type = NODE_SYMLINK;
      break;
    case S_IFIFO:
      e.type = NODE_FIFO;
      break;
    case S_IFCHR:
      e.type = NODE_CHAR_DEVICE;
      break;
    case S_IFBLK:
      e.type = NODE_BLOCK_DEVICE;
      break;
    case S_IFSOCK:
      e.type = NODE_SOCKET;
      break;
    default:
      e.type = NODE_UNKNOWN;
      break;
    }

  if (e.type == NODE_DIR && st.st_dev == src->dest_st.st_dev && st.st_ino == src->dest_st.st_ino)
    return import_throw_entry (error, path, "is the destination of this import");

  /* A second name of an inode already written becomes a hard link to it. */
  InodeKey inode = { st.st_dev, st.st_ino };
  gboolean may_be_linked = e.type != NODE_DIR && st.st_nlink > 1;
  if (may_be_linked)
    {
      e.hardlink_target = g_hash_table_lookup (src->links, &inode);
      if (e.hardlink_target != NULL)
        return tree_writer_add (src->w, path, &e, NULL, error);
    }

  g_autofree char *symlink_target = NULL;
  if (e.type == NODE_SYMLINK)
    {
      if (!read_symlink_at (dfd, ent->name, st.st_size, &symlink_target))
        return import_throw_entry_errno (error, path, "reading the symlink");
      e.symlink_target = symlink_target;
    }
  if (e.type == NODE_FIFO)
    {
      fd = openat (dfd, ent->name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
      if (fd < 0)
        return import_throw_entry_errno (error, path, "opening the FIFO");
    }

  XattrList xattrs;
  xattr_list_init (&xattrs);
  gboolean ok = TRUE;
  if (e.type == NODE_DIR || e.type == NODE_FILE || e.type == NODE_SYMLINK || e.type == NODE_FIFO)
    ok = read_source_xattrs (fd, dfd, ent->name, path, &xattrs, error);
  e.xattrs = (const XattrRef *)xattrs.refs->data;
  e.n_xattrs = xattrs.refs->len;

  FileCopy copy = { src->w, &src->w->main, fd, (guint64)st.st_blocks * 512 < e.size, FALSE };
  FileJob *job = NULL;
  if (e.type == NODE_FILE)
    {
      e.content = &copy_ops;
      e.content_data = &copy;
      if (ok && src->w->n_workers > 0)
        job = file_job_new (&e, &xattrs, &copy, &fd);
    }
  ok = ok && tree_writer_add (src->w, path, job != NULL ? &job->e : &e, job, error);
  xattr_list_clear (&xattrs);
  if (!ok)
    return FALSE;

  if (may_be_linked)
    g_hash_table_insert (src->links, g_memdup2 (&inode, sizeof inode), g_strdup (path));
  if (e.type == NODE_DIR)
    return import_source_children (src, fd, error);
  return TRUE;
}

static gboolean
import_source_children (DirSource *src, int dfd, GError **error)
{
  g_autoptr (GArray) listing = NULL;
  if (!list_source_directory (dfd, src->path->len > 0 ? src->path->str : ".", &listing, error))
    return FALSE;
  gsize len = src->path->len;
  for (guint i = 0; i < listing->len; i++)
    {
      const DirListing *ent = &g_array_index (listing, DirListing, i);
      if (len > 0)
        g_string_append_c (src->path, '/');
      g_string_append (src->path, ent->name);
      gboolean ok = import_source_entry (src, dfd, ent, error);
      g_string_truncate (src->path, len);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

gboolean
import_directory (TreeWriter *w, int image_fd, GError **error)
{
  DirSource src = { .w = w };
  if (fstat (w->root_fd, &src.dest_st) < 0)
    return throw_errno (error, "reading the destination directory");
  struct stat st;
  if (fstat (image_fd, &st) < 0)
    return throw_errno (error, "reading the image directory");

  /* The image root is an entry like any other, named "". */
  TreeEntry root = {
    .type = NODE_DIR,
    .perm = st.st_mode & 07777,
    .uid = st.st_uid,
    .gid = st.st_gid,
    .times = { st.st_atim, st.st_mtim },
  };
  XattrList xattrs;
  xattr_list_init (&xattrs);
  gboolean ok = read_source_xattrs (image_fd, -1, NULL, ".", &xattrs, error);
  root.xattrs = (const XattrRef *)xattrs.refs->data;
  root.n_xattrs = xattrs.refs->len;
  ok = ok && tree_writer_add (w, "", &root, NULL, error);
  xattr_list_clear (&xattrs);
  if (!ok)
    return FALSE;

  src.links = g_hash_table_new_full (inode_key_hash, inode_key_equal, g_free, g_free);
  src.path = g_string_new (NULL);
  tree_writer_start_workers (w);
  ok = import_source_children (&src, image_fd, error);
  g_hash_table_unref (src.links);
  g_string_free (src.path, TRUE);
  return ok;
}

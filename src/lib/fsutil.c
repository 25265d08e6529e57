#include "config.h"

#include "fsutil.h"
#include "errors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

void
fd_closep (int *fdp)
{
  if (*fdp >= 0)
    {
      int errsv = errno;
      /* Nothing useful can be done about a failed close of a read-only or
       * already-synced fd; durability is ensured by explicit fsyncs. */
      (void)close (*fdp);
      errno = errsv;
    }
  *fdp = -1;
}

static gboolean
opendir_at (int dfd, const char *path, gboolean optional, int *ret_fd, GError **error)
{
  int fd = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (optional && errno == ENOENT)
        {
          *ret_fd = -1;
          return TRUE;
        }
      return throw_errno (error, "opening directory %s", path);
    }
  *ret_fd = fd;
  return TRUE;
}

gboolean
fs_opendir_at (int dfd, const char *path, int *ret_fd, GError **error)
{
  return opendir_at (dfd, path, FALSE, ret_fd, error);
}

gboolean
fs_opendir_at_optional (int dfd, const char *path, int *ret_fd, GError **error)
{
  return opendir_at (dfd, path, TRUE, ret_fd, error);
}

gboolean
fs_ensure_dir_at (int dfd, const char *name, mode_t mode, GError **error)
{
  if (mkdirat (dfd, name, mode) == 0)
    return TRUE;
  if (errno != EEXIST)
    return throw_errno (error, "creating directory %s", name);
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return throw_errno (error, "checking %s", name);
  if (!S_ISDIR (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_FAILED, "%s exists and is not a directory", name);
  return TRUE;
}

char *
fs_temp_name (const char *prefix)
{
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  char suffix[7];
  for (guint i = 0; i < 6; i++)
    suffix[i] = chars[g_random_int_range (0, sizeof chars - 1)];
  suffix[6] = '\0';
  return g_strdup_printf (".%s-tmp-%s", prefix, suffix);
}

gboolean
fs_is_temp_name (const char *name)
{
  return name[0] == '.' && strstr (name, "-tmp-") != NULL;
}

gboolean
fs_is_vfat (int fd)
{
  struct statfs sfs;
  return fstatfs (fd, &sfs) == 0 && sfs.f_type == MSDOS_SUPER_MAGIC;
}

gboolean
fs_fsync_fd (int fd, const char *what, GError **error)
{
  if (fsync (fd) < 0)
    return throw_errno (error, "fsync of %s", what);
  return TRUE;
}

gboolean
fs_syncfs (int fd, const char *what, GError **error)
{
  if (syncfs (fd) < 0)
    return throw_errno (error, "syncfs of %s", what);
  return TRUE;
}

/* Creates a temp file next to @name; tries a few random names so a leftover
 * from a crash never blocks us. */
static gboolean
open_temp_file (int dfd, const char *name, char **ret_tmpname, int *ret_fd, GError **error)
{
  for (guint attempt = 0; attempt < 16; attempt++)
    {
      g_autofree char *tmpname = fs_temp_name (name);
      int fd = openat (dfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0)
        {
          *ret_tmpname = g_steal_pointer (&tmpname);
          *ret_fd = fd;
          return TRUE;
        }
      if (errno != EEXIST)
        return throw_errno (error, "creating temporary file for %s", name);
    }
  return throw_error (error, STAGEHAND_ERROR_FAILED, "creating temporary file for %s: no free name",
                      name);
}

/* The tail shared by atomic writes and copies: mode, optional fsync, rename
 * into place, fsync of the directory. Removes the temp file on failure. */
static gboolean
commit_temp_file (int dfd, int fd, const char *tmpname, const char *name, mode_t mode,
                  FsWriteFlags flags, GError **error)
{
  /* vfat has no mode bits to speak of and refuses most fchmod() calls;
   * nothing there may rely on them. */
  if (fchmod (fd, mode) < 0 && !(errno == EPERM && fs_is_vfat (fd)))
    throw_errno (error, "setting mode of %s", name);
  else if ((flags & FS_WRITE_SYNC) && fdatasync (fd) < 0)
    throw_errno (error, "fdatasync of %s", name);
  else if (renameat (dfd, tmpname, dfd, name) < 0)
    throw_errno (error, "renaming temporary file to %s", name);
  else if ((flags & FS_WRITE_SYNC) && fsync (dfd) < 0)
    throw_errno (error, "fsync of the directory of %s", name);
  else
    return TRUE;

  (void)unlinkat (dfd, tmpname, 0); /* best effort: the error above is the one to report */
  return FALSE;
}

/* write() all of @data, again after EINTR and short writes. FALSE with
 * errno set on failure. */
static gboolean
write_all (int fd, const void *data, gsize len)
{
  const guint8 *p = data;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      p += n;
      len -= n;
    }
  return TRUE;
}

gboolean
fs_write_file_atomic_at (int dfd, const char *name, const void *data, gsize len, mode_t mode,
                         FsWriteFlags flags, GError **error)
{
  g_autofree char *tmpname = NULL;
  autofd fd = -1;
  if (!open_temp_file (dfd, name, &tmpname, &fd, error))
    return FALSE;

  if (!write_all (fd, data, len))
    {
      throw_errno (error, "writing %s", name);
      (void)unlinkat (dfd, tmpname, 0); /* best effort cleanup of our own temp file */
      return FALSE;
    }

  return commit_temp_file (dfd, fd, tmpname, name, mode, flags, error);
}

/* Reads the open regular file @fd whole, NUL-terminated; @name is for messages. */
static gboolean
read_opened_file (int fd, const char *name, char **ret_contents, gsize *ret_len, GError **error)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return throw_errno (error, "reading %s", name);
  if (!S_ISREG (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is not a regular file", name);

  g_autoptr (GByteArray) buf = g_byte_array_sized_new (st.st_size + 1);
  guint8 chunk[8192];
  for (;;)
    {
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "reading %s", name);
      if (n == 0)
        break;
      g_byte_array_append (buf, chunk, n);
    }
  gsize len = buf->len;
  g_byte_array_append (buf, (const guint8 *)"", 1);
  *ret_contents = (char *)g_byte_array_free (g_steal_pointer (&buf), FALSE);
  if (ret_len)
    *ret_len = len;
  return TRUE;
}

static gboolean
read_file_at (int dfd, const char *name, gboolean optional, char **ret_contents, gsize *ret_len,
              GError **error)
{
  autofd fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      if (optional && errno == ENOENT)
        {
          *ret_contents = NULL;
          if (ret_len)
            *ret_len = 0;
          return TRUE;
        }
      return throw_errno (error, "opening %s", name);
    }
  return read_opened_file (fd, name, ret_contents, ret_len, error);
}

gboolean
fs_read_file_at (int dfd, const char *name, char **ret_contents, gsize *ret_len, GError **error)
{
  return read_file_at (dfd, name, FALSE, ret_contents, ret_len, error);
}

gboolean
fs_read_file_at_optional (int dfd, const char *name, char **ret_contents, gsize *ret_len,
                          GError **error)
{
  return read_file_at (dfd, name, TRUE, ret_contents, ret_len, error);
}

static int
open_resolving (int dfd, const char *path, int flags, guint64 resolve)
{
  struct open_how how = { .flags = flags | O_CLOEXEC, .resolve = resolve };
  return syscall (SYS_openat2, dfd, path, &how, sizeof how);
}

int
fs_open_beneath (int dfd, const char *path, int flags)
{
  return open_resolving (dfd, path, flags,
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

int
fs_open_in_root (int root_dfd, const char *path, int flags)
{
  return open_resolving (root_dfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

gboolean
fs_read_file_in_root_optional (int root_dfd, const char *path, char **ret_contents, gsize *ret_len,
                               GError **error)
{
  /* O_NONBLOCK: a FIFO in the image must not block the open; it is then
   * refused as not a regular file. */
  autofd fd = fs_open_in_root (root_dfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    {
      if (errno == ENOENT)
        {
          *ret_contents = NULL;
          if (ret_len)
            *ret_len = 0;
          return TRUE;
        }
      return throw_errno (error, "opening %s", path);
    }
  return read_opened_file (fd, path, ret_contents, ret_len, error);
}

gboolean
fs_unlink_at_optional (int dfd, const char *name, int flags, GError **error)
{
  if (unlinkat (dfd, name, flags) < 0 && errno != ENOENT)
    return throw_errno (error, "removing %s", name);
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

gboolean
fs_list_dir (int dfd, const char *what, GPtrArray **ret_names, GError **error)
{
  /* fdopendir() takes the fd over; list a duplicate so @dfd stays ours. */
  int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 3);
  DIR *d = dup_fd >= 0 ? fdopendir (dup_fd) : NULL;
  if (d == NULL)
    {
      int errsv = errno;
      if (dup_fd >= 0)
        close (dup_fd);
      return throw_errno_value (error, errsv, "listing %s", what);
    }
  /* The duplicate shares @dfd's directory offset: a second listing of the
   * same fd would start where the first ended, and see nothing. */
  rewinddir (d);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((errno = 0, de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      g_ptr_array_add (names, g_strdup (de->d_name));
  int errsv = errno;
  closedir (d);
  if (errsv != 0)
    return throw_errno_value (error, errsv, "listing %s", what);
  g_ptr_array_sort (names, compare_names);
  *ret_names = g_steal_pointer (&names);
  return TRUE;
}

static gboolean
rm_rf_children (int dfd, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (dfd, "a directory", &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    if (!fs_rm_rf_at (dfd, names->pdata[i], error))
      return FALSE;
  return TRUE;
}

gboolean
fs_rm_rf_at (int dfd, const char *name, GError **error)
{
  if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
    return TRUE;
  if (errno != EISDIR && errno != EPERM)
    return throw_errno (error, "removing %s", name);

  autofd child = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (child < 0)
    {
      if (errno == ENOENT)
        return TRUE;
      return throw_errno (error, "removing %s", name);
    }
  if (!rm_rf_children (child, error))
    return prefix_error (error, "removing %s: ", name);
  if (unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return throw_errno (error, "removing directory %s", name);
  return TRUE;
}

gboolean
fs_copy_file_atomic_at (int src_dfd, const char *src_name, int dest_dfd, const char *dest_name,
                        mode_t mode, GError **error)
{
  autofd src = openat (src_dfd, src_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (src < 0)
    return throw_errno (error, "opening %s", src_name);
  struct stat st;
  if (fstat (src, &st) < 0)
    return throw_errno (error, "reading %s", src_name);
  if (!S_ISREG (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_INVALID, "%s is not a regular file", src_name);

  g_autofree char *tmpname = NULL;
  autofd fd = -1;
  if (!open_temp_file (dest_dfd, dest_name, &tmpname, &fd, error))
    return FALSE;

  /* A reflink costs nothing where the filesystem shares extents; otherwise
   * copy_file_range lets the kernel copy without a trip through userspace. */
  gboolean copied = ioctl (fd, FICLONE, src) == 0;
  off_t remaining = copied ? 0 : st.st_size;
  while (remaining > 0)
    {
      ssize_t n = copy_file_range (src, NULL, fd, NULL, remaining, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
        {
          /* Fall back to read/write (e.g. vfat or cross-filesystem on old kernels). */
          char buf[65536];
          n = read (src, buf, MIN ((off_t)sizeof buf, remaining));
          if (n > 0 && !write_all (fd, buf, n))
            n = -1;
        }
      if (n < 0)
        {
          throw_errno (error, "copying %s to %s", src_name, dest_name);
          (void)unlinkat (dest_dfd, tmpname, 0); /* best effort: report the copy error */
          return FALSE;
        }
      if (n == 0)
        {
          (void)unlinkat (dest_dfd, tmpname, 0); /* best effort: report the truncation */
          return throw_error (error, STAGEHAND_ERROR_FAILED,
                              "copying %s: file shrank while copying", src_name);
        }
      remaining -= n;
    }

  return commit_temp_file (dest_dfd, fd, tmpname, dest_name, mode, FS_WRITE_SYNC, error);
}

gboolean
fs_free_bytes (int fd, guint64 *ret_bytes, GError **error)
{
  struct statvfs sv;
  if (fstatvfs (fd, &sv) < 0)
    return throw_errno (error, "checking free space");
  *ret_bytes = (guint64)sv.f_bavail * sv.f_frsize;
  return TRUE;
}

gboolean
fs_stat_optional (int dfd, const char *name, struct stat *ret_st, gboolean *ret_exists,
                  GError **error)
{
  if (fstatat (dfd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      *ret_exists = TRUE;
      return TRUE;
    }
  if (errno != ENOENT)
    return throw_errno (error, "checking %s", name);
  *ret_exists = FALSE;
  return TRUE;
}

char *
fs_fd_path (int fd)
{
  g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", fd);
  char *target = g_file_read_link (link, NULL);
  return target ? target : g_strdup_printf ("fd %d", fd);
}

/* Copying the image's /var into the persistent /var of its os on the first
 * boot, and removing a copy that an interrupted first boot left behind.
 * fd-relative throughout, never following a symlink. */
#include "root-setup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define COPY_BUFFER_SIZE (128 * 1024)

static int
fail (int r, const char *where, char **ret_where)
{
  if (ret_where != NULL && *ret_where == NULL && where != NULL)
    *ret_where = strdup (where);
  return r;
}

/* A directory stream on @fd, which it takes (closed if this fails); @fd < 0
 * is a failed open, whose errno this returns. */
static int
open_dir_stream (int fd, DIR **ret_dir)
{
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int r = -errno;
      close (fd);
      return r;
    }
  *ret_dir = d;
  return 0;
}

/* Extended attributes (security.selinux, security.capability, user.*) from
 * one open file to another. An attribute the target filesystem refuses is
 * an error: a /var without its labels would boot into denials. */
static int
copy_xattrs (int src_fd, int dst_fd)
{
  ssize_t len = flistxattr (src_fd, NULL, 0);
  if (len < 0)
    return errno == ENOTSUP ? 0 : -errno;
  if (len == 0)
    return 0;
  char *names = malloc (len);
  if (names == NULL)
    return -ENOMEM;
  len = flistxattr (src_fd, names, len);
  int r = len < 0 ? -errno : 0;
  for (char *n = names; r == 0 && n < names + len; n += strlen (n) + 1)
    {
      ssize_t vlen = fgetxattr (src_fd, n, NULL, 0);
      if (vlen < 0)
        {
          r = -errno;
          break;
        }
      char *value = malloc (vlen > 0 ? vlen : 1);
      if (value == NULL)
        {
          r = -ENOMEM;
          break;
        }
      vlen = fgetxattr (src_fd, n, value, vlen);
      if (vlen < 0 || fsetxattr (dst_fd, n, value, vlen, 0) < 0)
        r = -errno;
      free (value);
    }
  free (names);
  return r;
}

/* Owner, then mode (chown clears setuid bits), then times. */
static int
copy_metadata (int src_fd, int dst_fd, const struct stat *st)
{
  int r = copy_xattrs (src_fd, dst_fd);
  if (r < 0)
    return r;
  if (fchown (dst_fd, st->st_uid, st->st_gid) < 0 || fchmod (dst_fd, st->st_mode & 07777) < 0)
    return -errno;
  struct timespec times[2] = { st->st_atim, st->st_mtim };
  return futimens (dst_fd, times) < 0 ? -errno : 0;
}

static int
copy_data (int src_fd, int dst_fd)
{
  for (;;)
    {
      ssize_t n = copy_file_range (src_fd, NULL, dst_fd, NULL, 1 << 30, 0);
      if (n == 0)
        return 0;
      if (n > 0)
        continue;
      if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
        return -errno;
      break;
    }
  /* Across filesystems on older kernels: read and write. */
  char *buf = malloc (COPY_BUFFER_SIZE);
  if (buf == NULL)
    return -ENOMEM;
  int r = 0;
  for (;;)
    {
      ssize_t n = read (src_fd, buf, COPY_BUFFER_SIZE);
      if (n <= 0)
        {
          r = n < 0 ? -errno : 0;
          break;
        }
      for (ssize_t done = 0; done < n;)
        {
          ssize_t w = write (dst_fd, buf + done, n - done);
          if (w < 0)
            {
              free (buf);
              return -errno;
            }
          done += w;
        }
    }
  free (buf);
  return r;
}

static int
copy_regular (int src_dfd, int dst_dfd, const char *name, const struct stat *st)
{
  int src = openat (src_dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (src < 0)
    return -errno;
  int dst = openat (dst_dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (dst < 0)
    {
      int r = -errno;
      close (src);
      return r;
    }
  int r = copy_data (src, dst);
  if (r == 0)
    r = copy_metadata (src, dst, st);
  close (src);
  close (dst);
  return r;
}

static int
copy_symlink (int src_dfd, int dst_dfd, const char *name, const struct stat *st)
{
  size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : 4096;
  char *target = malloc (size);
  if (target == NULL)
    return -ENOMEM;
  ssize_t n = readlinkat (src_dfd, name, target, size);
  int r = 0;
  if (n < 0 || (size_t)n >= size)
    r = n < 0 ? -errno : -ENAMETOOLONG;
  else
    {
      target[n] = '\0';
      struct timespec times[2] = { st->st_atim, st->st_mtim };
      if (symlinkat (target, dst_dfd, name) < 0
          || fchownat (dst_dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0
          || utimensat (dst_dfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
        r = -errno;
    }
  free (target);
  return r;
}

static int copy_dir_entries (int src_dfd, int dst_dfd, char **ret_where);

static int
copy_dir (int src_dfd, int dst_dfd, const char *name, const struct stat *st, char **ret_where)
{
  if (mkdirat (dst_dfd, name, 0700) < 0)
    return -errno;
  int src = openat (src_dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (src < 0)
    return -errno;
  int dst = openat (dst_dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int r = dst < 0 ? -errno : copy_dir_entries (src, dst, ret_where);
  /* The mode last: a read-only directory still takes its entries. */
  if (r == 0)
    r = copy_metadata (src, dst, st);
  close (src);
  if (dst >= 0)
    close (dst);
  return r;
}

static int
copy_dir_entries (int src_dfd, int dst_dfd, char **ret_where)
{
  /* A duplicate: closedir() closes the fd it reads, and @src_dfd is the
   * caller's. */
  DIR *d = NULL;
  int r = open_dir_stream (fcntl (src_dfd, F_DUPFD_CLOEXEC, 3), &d);
  if (r < 0)
    return r;
  struct dirent *de;
  while (r == 0 && (errno = 0, de = readdir (d)) != NULL)
    {
      const char *name = de->d_name;
      if (strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
        continue;
      struct stat st;
      if (fstatat (src_dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        r = -errno;
      else if (S_ISDIR (st.st_mode))
        r = copy_dir (src_dfd, dst_dfd, name, &st, ret_where);
      else if (S_ISREG (st.st_mode))
        r = copy_regular (src_dfd, dst_dfd, name, &st);
      else if (S_ISLNK (st.st_mode))
        r = copy_symlink (src_dfd, dst_dfd, name, &st);
      else if (S_ISFIFO (st.st_mode))
        {
          struct timespec times[2] = { st.st_atim, st.st_mtim };
          if (mkfifoat (dst_dfd, name, st.st_mode & 07777) < 0
              || fchownat (dst_dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0
              || fchmodat (dst_dfd, name, st.st_mode & 07777, 0) < 0
              || utimensat (dst_dfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
            r = -errno;
        }
      /* Device nodes and sockets: the importer keeps them out of a
       * deployment's /var already; nothing to copy. */
      if (r < 0)
        r = fail (r, name, ret_where);
    }
  if (r == 0 && errno != 0)
    r = -errno;
  closedir (d);
  return r;
}

int
tree_copy (int src_dfd, int dst_dfd, char **ret_where)
{
  if (ret_where != NULL)
    *ret_where = NULL;
  return copy_dir_entries (src_dfd, dst_dfd, ret_where);
}

int
tree_remove (int dfd, const char *name)
{
  if (unlinkat (dfd, name, 0) == 0)
    return 0;
  if (errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return -errno;
  DIR *d = NULL;
  int r = open_dir_stream (openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), &d);
  if (r < 0)
    return r;
  struct dirent *de;
  while (r == 0 && (de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      r = tree_remove (dirfd (d), de->d_name);
  closedir (d);
  if (r == 0 && unlinkat (dfd, name, AT_REMOVEDIR) < 0)
    r = -errno;
  return r;
}

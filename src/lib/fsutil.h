/* Filesystem helpers. Every path below the sysroot is opened relative to a
 * held directory fd, with O_NOFOLLOW and O_CLOEXEC; nothing here glues path
 * strings together. Files appear under their final name only complete:
 * temp file, fsync, rename, fsync of the directory.
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* An fd closed when it goes out of scope (GLib 2.74 has no g_autofd). */
void fd_closep (int *fdp);
#define autofd __attribute__ ((cleanup (fd_closep))) int

/* Hands ownership of an fd on: returns it and leaves -1 behind. */
static inline int
fd_steal (int *fdp)
{
  int fd = *fdp;
  *fdp = -1;
  return fd;
}

typedef enum
{
  FS_WRITE_NONE = 0,
  /* fsync the file before the rename and the directory after it. */
  FS_WRITE_SYNC = 1 << 0,
} FsWriteFlags;

/* Opens the directory @path relative to @dfd (O_DIRECTORY|O_NOFOLLOW on the
 * last component). */
gboolean fs_opendir_at (int dfd, const char *path, int *ret_fd, GError **error);

/* Like fs_opendir_at() but returns TRUE with *ret_fd = -1 when @path does not exist. */
gboolean fs_opendir_at_optional (int dfd, const char *path, int *ret_fd, GError **error);

/* mkdirat() that succeeds when the directory already exists (a symlink or
 * other file there is an error). */
gboolean fs_ensure_dir_at (int dfd, const char *name, mode_t mode, GError **error);

/* Writes @len bytes of @data to @name below @dfd atomically: a temp file in
 * the same directory, fchmod @mode, optional fsync, renameat over @name,
 * optional fsync of @dfd. On failure the temp file is removed and @name is
 * untouched. */
gboolean fs_write_file_atomic_at (int dfd, const char *name, const void *data, gsize len,
                                  mode_t mode, FsWriteFlags flags, GError **error);

/* Reads a whole (small) regular file, refusing symlinks. NUL-terminated. */
gboolean fs_read_file_at (int dfd, const char *name, char **ret_contents, gsize *ret_len,
                          GError **error);

/* Like fs_read_file_at() but returns TRUE with *ret_contents = NULL when missing. */
gboolean fs_read_file_at_optional (int dfd, const char *name, char **ret_contents, gsize *ret_len,
                                   GError **error);

/* Opening a path inside an image tree (kernel, os-release): the image's
 * symlinks must never lead out of it. An image whose usr/ was a symlink to
 * the host's /usr made stagehand install the host's kernel as the image's.
 *
 * fs_open_beneath() follows no symlink at all and never leaves @dfd
 * (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a plain openat() of the
 * same path then reaches the same file. fs_open_in_root() resolves
 * symlinks as the image itself would, with @root_dfd as "/"
 * (RESOLVE_IN_ROOT): an absolute link or ".." stops at the image root.
 * Both add O_CLOEXEC and return the fd, or -1 with errno set. */
int fs_open_beneath (int dfd, const char *path, int flags);
int fs_open_in_root (int root_dfd, const char *path, int flags);

/* Reads a whole (small) regular file at @path in the image rooted at
 * @root_dfd (fs_open_in_root()); *ret_contents = NULL when it does not exist. */
gboolean fs_read_file_in_root_optional (int root_dfd, const char *path, char **ret_contents,
                                        gsize *ret_len, GError **error);

/* The names in the directory @dfd, without "." and "..", sorted bytewise.
 * @what names the directory in errors. */
gboolean fs_list_dir (int dfd, const char *what, GPtrArray **ret_names, GError **error);

/* Removes @name below @dfd recursively, without following symlinks.
 * A missing @name is success. */
gboolean fs_rm_rf_at (int dfd, const char *name, GError **error);

/* unlinkat() that treats ENOENT as success. */
gboolean fs_unlink_at_optional (int dfd, const char *name, int flags, GError **error);

/* TRUE if @fd is on vfat (the EFI system partition), which has no symlinks,
 * ownership or meaningful mode bits. */
gboolean fs_is_vfat (int fd);

gboolean fs_fsync_fd (int fd, const char *what, GError **error);
gboolean fs_syncfs (int fd, const char *what, GError **error);

/* A name for a temporary file or directory: ".<prefix>-tmp-XXXXXX" with
 * random characters, @prefix cut short (at a UTF-8 character boundary) so
 * the whole fits NAME_MAX. Temp names start with '.' so listings can tell
 * them apart and cleanup can remove them, in the directories that are
 * stagehand's alone. */
char *fs_temp_name (const char *prefix);

/* TRUE if @name is a stagehand temp name (see fs_temp_name()). Only for
 * directories that are stagehand's alone: another tool may use such names. */
gboolean fs_is_temp_name (const char *name);

/* TRUE if @name is exactly what fs_temp_name (@prefix) returns (@prefix
 * short enough not to be cut): for a directory others write into too. */
gboolean fs_is_temp_name_of (const char *name, const char *prefix);

/* Copies the regular file @src_name below @src_dfd to @dest_name below
 * @dest_dfd atomically and durably (temp + fsync + rename + fsync dir), with
 * mode @mode. Uses copy_file_range/reflinks where possible. */
gboolean fs_copy_file_atomic_at (int src_dfd, const char *src_name, int dest_dfd,
                                 const char *dest_name, mode_t mode, GError **error);

/* Free bytes available to the caller on the filesystem of @fd. */
gboolean fs_free_bytes (int fd, guint64 *ret_bytes, GError **error);

/* fstatat(AT_SYMLINK_NOFOLLOW) returning FALSE with *ret_exists = FALSE for ENOENT. */
gboolean fs_stat_optional (int dfd, const char *name, struct stat *ret_st, gboolean *ret_exists,
                           GError **error);

/* The path an fd refers to, for messages only (readlink of /proc/self/fd/N). */
char *fs_fd_path (int fd);

G_END_DECLS

#include "config.h"

#include "boot-kernel.h"
#include "boot-config.h"
#include "errors.h"
#include "fsutil.h"
#include "kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* One file of a kernel directory: its name there and where it comes from. */
typedef struct
{
  const char *name;      /* KERNEL_BOOT_FILE or INITRAMFS_BOOT_FILE */
  const char *tree_path; /* relative to the deployment tree */
  guint64 size;          /* the tree file's size */
} KernelFile;

/* The files @origin's kernel directory must hold, with their sizes in the
 * deployment tree. Returns how many (1 or 2). */
static gboolean
kernel_files (int tree_dfd, const Origin *origin, KernelFile ret_files[2], guint *ret_n,
              GError **error)
{
  const char *names[] = { KERNEL_BOOT_FILE, INITRAMFS_BOOT_FILE };
  const char *paths[] = { origin->kernel_path, origin->initramfs_path };
  guint n = 0;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      struct stat st;
      if (paths[i] == NULL)
        continue;
      if (fstatat (tree_dfd, paths[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
        return throw_errno (error, "%s", paths[i]);
      ret_files[n++] = (KernelFile){ .name = names[i], .tree_path = paths[i], .size = st.st_size };
    }
  *ret_n = n;
  return TRUE;
}

static gboolean
check_space (int kdir, const KernelFile *files, guint n, GError **error)
{
  guint64 needed = 64 * 1024; /* a directory and some slack */
  for (guint i = 0; i < n; i++)
    needed += (files[i].size + 4095) / 4096 * 4096; /* whole 4 KiB blocks, as the filesystem */
  guint64 available;
  if (!fs_free_bytes (kdir, &available, error))
    return FALSE;
  if (available < needed)
    return throw_error (error, STAGEHAND_ERROR_NO_SPACE,
                        "not enough space in the boot directory: need %" G_GUINT64_FORMAT
                        " bytes, %" G_GUINT64_FORMAT
                        " available (run 'stagehand cleanup' or free space in /boot)",
                        needed, available);
  return TRUE;
}

/* A new kernel directory: a temp directory, a copy + fsync of each file,
 * fsync of the directory, rename, fsync of the parent. */
static gboolean
install_new (int kdir, int tree_dfd, const char *final, const KernelFile *files, guint n,
             GError **error)
{
  if (!check_space (kdir, files, n, error))
    return FALSE;
  g_autofree char *tmp = fs_temp_name (final);
  if (mkdirat (kdir, tmp, 0755) < 0)
    return throw_errno (error, "creating %s", tmp);
  autofd tmp_dfd = -1;
  gboolean ok = fs_opendir_at (kdir, tmp, &tmp_dfd, error);
  for (guint i = 0; ok && i < n; i++)
    ok = fs_copy_file_atomic_at (tree_dfd, files[i].tree_path, tmp_dfd, files[i].name, 0644, error);
  ok = ok && fs_fsync_fd (tmp_dfd, tmp, error);
  if (ok && renameat (kdir, tmp, kdir, final) < 0)
    ok = throw_errno (error, "renaming %s to %s", tmp, final);
  if (!ok)
    {
      /* Best effort: the temp directory is ours; cleanup removes it otherwise. */
      (void)fs_rm_rf_at (kdir, tmp, NULL);
      return FALSE;
    }
  return fs_fsync_fd (kdir, BOOT_KERNEL_DIR, error);
}

/* An existing kernel directory: the files that are missing or wrong are
 * copied again, each replacing its name atomically. Sizes, not content:
 * reading 40-70 MB to hash them would cost seconds at shutdown, and a
 * file reaches its name only complete (fsynced before its rename), so
 * what goes wrong is a file deleted or replaced by hand or by a tool. */
static gboolean
repair_existing (int kdir, int tree_dfd, const char *final, const KernelFile *files, guint n,
                 gboolean *ret_repaired, GError **error)
{
  autofd dfd = -1;
  if (!fs_opendir_at (kdir, final, &dfd, error))
    return FALSE;
  KernelFile wrong[2];
  guint n_wrong = 0;
  for (guint i = 0; i < n; i++)
    {
      /* A symlink in its place is replaced too (never followed); a
       * directory makes the copy's rename fail, naming it. */
      struct stat st;
      if (fstatat (dfd, files[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode)
          || (guint64)st.st_size != files[i].size)
        wrong[n_wrong++] = files[i];
    }
  *ret_repaired = n_wrong > 0;
  if (n_wrong == 0)
    return TRUE;
  if (!check_space (kdir, wrong, n_wrong, error))
    return FALSE;
  for (guint i = 0; i < n_wrong; i++)
    if (!fs_copy_file_atomic_at (tree_dfd, wrong[i].tree_path, dfd, wrong[i].name, 0644, error))
      return FALSE;
  return TRUE;
}

gboolean
boot_kernel_install (int boot_dfd, int tree_dfd, const Origin *origin, BootKernelAction *ret_action,
                     GError **error)
{
  g_autofree char *final = origin_boot_dir_name (origin);
  KernelFile files[2];
  guint n = 0;
  autofd kdir = -1;
  if (!kernel_files (tree_dfd, origin, files, &n, error)
      || !fs_ensure_dir_at (boot_dfd, BOOT_KERNEL_DIR, 0755, error)
      || !fs_opendir_at (boot_dfd, BOOT_KERNEL_DIR, &kdir, error))
    return prefix_error (error, "installing the kernel: ");

  struct stat st;
  gboolean exists;
  if (!fs_stat_optional (kdir, final, &st, &exists, error))
    return prefix_error (error, "installing the kernel: ");
  if (!exists)
    {
      if (!install_new (kdir, tree_dfd, final, files, n, error))
        return prefix_error (error, "installing the kernel: ");
      *ret_action = BOOT_KERNEL_INSTALLED;
      return TRUE;
    }
  if (!S_ISDIR (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "installing the kernel: " BOOT_KERNEL_DIR
                        "/%s in the boot directory is not a directory (remove it)",
                        final);
  gboolean repaired;
  if (!repair_existing (kdir, tree_dfd, final, files, n, &repaired, error))
    return prefix_error (error, "installing the kernel: repairing " BOOT_KERNEL_DIR "/%s: ", final);
  *ret_action = repaired ? BOOT_KERNEL_REPAIRED : BOOT_KERNEL_PRESENT;
  return TRUE;
}

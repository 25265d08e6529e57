/* Finding the one kernel (and initramfs) of a deployment tree. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *version;        /* kver */
  char *kernel_path;    /* relative to the tree */
  char *initramfs_path; /* relative to the tree, NULL if none */
  guint64 kernel_size;
  guint64 initramfs_size;
} KernelInfo;

void kernel_info_free (KernelInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KernelInfo, kernel_info_free)

/* Finds exactly one kernel below @tree_dfd, at
 * usr/lib/modules/<kver>/vmlinuz (+ initramfs.img beside it) or at
 * boot/vmlinuz-<kver> (+ boot/initrd.img-<kver> or boot/initramfs-<kver>.img).
 * The same kver in both places counts once (usr/lib/modules wins). No kernel
 * or two kernels: STAGEHAND_ERROR_INVALID naming what was found. */
gboolean kernel_find (int tree_dfd, KernelInfo **ret_info, GError **error);

/* The names of the kernel and the initramfs in <boot>/stagehand/<os>-<bootcsum>/. */
#define KERNEL_BOOT_FILE "vmlinuz"
#define INITRAMFS_BOOT_FILE "initramfs.img"

/* The bootcsum, 64 hex digits: the SHA-256 of the text
 * "<sha256 of the kernel>  vmlinuz\n" followed, when there is an
 * initramfs, by "<sha256 of the initramfs>  initramfs.img\n" (what
 * `sha256sum vmlinuz initramfs.img` prints in the kernel directory). Each
 * file is hashed on its own, so no two different kernel/initramfs pairs
 * share a bootcsum. Deployments staged before this framing keep the
 * bootcsum their origin records: it is a name, never computed again. */
gboolean kernel_checksum (int tree_dfd, const KernelInfo *info, char **ret_bootcsum,
                          GError **error);

G_END_DECLS

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

/* SHA-256 over the kernel's bytes followed by the initramfs's, as 64 hex digits. */
gboolean kernel_checksum (int tree_dfd, const KernelInfo *info, char **ret_bootcsum,
                          GError **error);

G_END_DECLS

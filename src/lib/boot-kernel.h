/* The kernels in <boot>: <boot>/stagehand/<os>-<bootcsum>/vmlinuz (and
 * initramfs.img), copied from a deployment tree, named by content. */
#pragma once

#include <glib.h>

#include "origin.h"

G_BEGIN_DECLS

/* What boot_kernel_install() found and did. */
typedef enum
{
  BOOT_KERNEL_PRESENT,   /* every file there, with the deployment's size: nothing copied */
  BOOT_KERNEL_INSTALLED, /* no directory: created it, with both files */
  BOOT_KERNEL_REPAIRED,  /* the directory was there, a file in it missing or wrong: copied again */
} BootKernelAction;

/* Makes sure <boot>/stagehand/<os>-<bootcsum>/ holds the kernel (and
 * initramfs) of @origin, copying them from the deployment tree @tree_dfd
 * where they are missing. A directory that exists is not taken on trust:
 * a file in it that is missing, not a regular file or of another size
 * than the deployment's is copied again (atomically: temp, fsync, rename,
 * fsync of the directory). A new directory is filled as a temp directory
 * and renamed into place. Free space is checked before any copy. */
gboolean boot_kernel_install (int boot_dfd, int tree_dfd, const Origin *origin,
                              BootKernelAction *ret_action, GError **error);

G_END_DECLS

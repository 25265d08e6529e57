/* The boot configuration in <boot>: the loader entries and the kernels they
 * name, and the atomic switch from one entry set to the next.
 *
 * Symlink mode (ext4, xfs, btrfs): <boot>/loader -> loader.N; a new set is
 * written complete into loader.(1-N), then a new symlink is renamed over
 * <boot>/loader. That rename is the commit point: before it the old set is
 * live, after it the new one, and both are complete at every instant.
 *
 * Exchange mode (vfat, which has no symlinks): <boot>/loader is a real
 * directory and the swap is renameat2(RENAME_EXCHANGE) of loader/entries
 * with a complete sibling, loader/entries.new; where the filesystem
 * refuses the exchange, a series of renames that is undone if one fails
 * (boot-exchange.c).
 */
#pragma once

#include <glib.h>

#include "bls.h"
#include "origin.h"
#include "verdict.h"

G_BEGIN_DECLS

typedef enum
{
  BOOT_MODE_NONE,     /* no loader: the boot directory was never initialised */
  BOOT_MODE_SYMLINK,  /* loader -> loader.N */
  BOOT_MODE_EXCHANGE, /* loader/ is a directory (vfat) */
} BootMode;

const char *boot_mode_to_string (BootMode mode);

/* Where stagehand keeps kernels and initramfs images below <boot>. */
#define BOOT_KERNEL_DIR "stagehand"

typedef struct
{
  BootMode mode;
  int version;         /* symlink mode: the N of the live loader.N; else -1 */
  gboolean atomic;     /* the swap is expected to be a single rename */
  char *atomic_reason; /* why (or why not) */
  GPtrArray *entries;  /* BootEntry*, menu order: the first is the default */
  GPtrArray *warnings; /* char*: entries that could not be read, and why */
  char *entries_path;  /* the live entries directory below <boot>, or NULL */
  /* Exchange mode: loader/entries.old is there, so a non-atomic switch was
   * interrupted and the menu may hold entries of two sets (boot-exchange.c);
   * sysroot_repair_interrupted_switch() writes it whole again. */
  gboolean switch_interrupted;
  /* What the live directory a new set is copied from held when this was
   * read; boot_config_swap() compares it right before the commit point. */
  char *live_fingerprint;
} BootConfig;

void boot_config_free (BootConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BootConfig, boot_config_free)

/* Reads the live configuration. A stagehand entry that does not parse is
 * left out and named in ->warnings; so is one whose kernel or initramfs is
 * missing (it stays in the menu: finalize copies the kernel again), and
 * another tool's entry that cannot be read (but a symlink: it is not
 * followed; all are carried over as they are). */
gboolean boot_config_load (int boot_dfd, BootConfig **ret_config, GError **error);

/* The mode a new boot directory on a filesystem of type @f_type (statfs)
 * gets: exchange on vfat, which has no symlinks; symlink elsewhere. */
BootMode boot_mode_for_filesystem (long f_type);

/* Whether an exchange-mode swap on a filesystem of type @f_type (statfs)
 * under kernel @kernel_release (uname; may be NULL) is expected to be one
 * renameat2(RENAME_EXCHANGE), and why, for status. The swap itself always
 * tries the exchange and falls back only when the filesystem refuses it;
 * @forced_off stands for STAGEHAND_DEBUG_NO_EXCHANGE, which makes it
 * behave as refused. */
gboolean boot_exchange_expect_atomic (long f_type, const char *kernel_release, gboolean forced_off,
                                      char **ret_reason);

/* The same for the boot directory @boot_dfd on this kernel. */
gboolean boot_exchange_expect_atomic_at (int boot_dfd, char **ret_reason);

/* Creates an empty configuration in an uninitialised boot directory, in
 * @requested mode (BOOT_MODE_NONE: what the filesystem supports).
 * Idempotent; an existing layout is never converted (asking for another
 * mode is an error). */
gboolean boot_config_init (int boot_dfd, BootMode requested, GError **error);

/* The boot entry for a deployment at menu priority @priority (higher sorts
 * first); @kargs are the deployment's kernel arguments. */
BootEntry *boot_entry_new_for_origin (const Origin *origin, guint priority);

/* Writes @entries (stagehand's BootEntry*, menu order) as the new
 * configuration, with everything else the live directories hold at that
 * moment carried over as it is (another tool's entries and files, whatever
 * their names and types), and switches to it atomically: write the
 * inactive set (fsync each file and the
 * directories), syncfs() of <boot> and of @sysroot_dfd, swap, fsync of the
 * directory holding the swapped name. Step durations are added to @timings
 * (may be NULL), and how the switch was made (->switched). When the live
 * directory changed since @current was read (another tool wrote into it),
 * fails with STAGEHAND_ERROR_CHANGED before the commit point: read it
 * again and retry. Returns FALSE only before the commit
 * point, with the live configuration untouched; a failure after it (the final fsync) is logged as a
 * warning. */
gboolean boot_config_swap (int boot_dfd, int sysroot_dfd, const BootConfig *current,
                           GPtrArray *entries, Verdict *timings, GError **error);

/* Removes the now-inactive entry set left by a swap. Errors are for the
 * caller to log as warnings: the swap already committed. */
gboolean boot_config_tidy (int boot_dfd, GError **error);

G_END_DECLS

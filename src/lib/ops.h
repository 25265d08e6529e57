/* The operations behind the verbs. Each expects an open sysroot; all but
 * sysroot_init() expect the sysroot lock held and the state loaded
 * (sysroot_lock() + sysroot_load()), and leave the state to be reloaded.
 */
#pragma once

#include <glib.h>

#include "boot-counting.h"
#include "etc-merge.h"
#include "image-import.h"
#include "sysroot.h"

G_BEGIN_DECLS

/* Creates the state layout and an empty boot configuration in @mode
 * (BOOT_MODE_NONE: the filesystem's natural mode), taking the lock as soon
 * as the state directory exists. Idempotent. */
gboolean sysroot_init (Sysroot *self, BootMode mode, guint lock_timeout, LockWaitFunc wait_func,
                       gpointer wait_data, GError **error);

/* The steps of a stage an updater can show (stage --progress-fd). */
typedef enum
{
  STAGE_PHASE_IMPORT, /* the image is imported; ImportProgress follows */
  STAGE_PHASE_KERNEL, /* the kernel and initramfs are copied into the boot directory */
  STAGE_PHASE_SYNC,   /* the sysroot filesystem is synced */
} StagePhase;

/* A phase as it starts: its size where known before it runs, else -1.
 * The import is streamed, so its totals are not known. */
typedef struct
{
  StagePhase phase;
  gint64 total_files;
  gint64 total_bytes;
} StagePhaseInfo;

typedef void (*StagePhaseFunc) (const StagePhaseInfo *info, gpointer user_data);

typedef struct
{
  const char *os;     /* NULL: the image's os-release ID */
  char *const *kargs; /* --karg values, NULL-terminated, may be NULL */
  /* Write the staged-pending marker (see pending.h): `stage`, whose
   * finalize runs in another process later, not `deploy`, whose runs now. */
  gboolean mark_pending;
  ImportProgressFunc progress;
  /* Called as each phase starts, in the order of StagePhase; may be NULL.
   * Gets progress_data too. */
  StagePhaseFunc phase;
  gpointer progress_data;
} StageOptions;

/* Imports @image as a new deployment, installs its kernel into <boot>,
 * syncs, and records it as staged (replacing any staged one). A failure
 * leaves nothing behind. Returns "<os>/<id>". */
gboolean sysroot_stage (Sysroot *self, const char *image, const StageOptions *options,
                        char **ret_deployment, GError **error);

/* Removes the staged record, and with it the staged-pending marker.
 * *ret_was_staged tells whether there was one. A corrupt record is removed
 * too. Without a record, a marker is left for the boot-time check. */
gboolean sysroot_unstage (Sysroot *self, gboolean *ret_was_staged, GError **error);

/* Makes the staged deployment the default: entries, swap, verdict, then
 * removes the staged record and tidies. Nothing staged: *ret_verdict is
 * NULL and nothing is touched. Otherwise *ret_verdict is the recorded
 * verdict (also on failure, where the error is returned too). */
gboolean sysroot_finalize_staged (Sysroot *self, Verdict **ret_verdict, GError **error);

/* Makes the previous deployment the default. Refuses while one is staged. */
gboolean sysroot_rollback (Sysroot *self, char **ret_deployment, GError **error);

typedef struct
{
  guint deployments_removed;
  guint kernels_removed;
  guint temp_removed;
} CleanupStats;

/* Removes deployments and boot files nothing refers to (the live menu, the
 * staged record, the booted deployment), and leftovers of interrupted runs. */
gboolean sysroot_cleanup (Sysroot *self, CleanupStats *ret_stats, GError **error);

/* When the boot configuration says a non-atomic switch was interrupted
 * (BootConfig.switch_interrupted), writes the menu whole again as it
 * stands (its default first, each deployment once) and reloads the state;
 * otherwise does nothing. cleanup calls it first. */
gboolean sysroot_repair_interrupted_switch (Sysroot *self, GError **error);

/* The boot-time check: if the last finalize failed (or was not attempted)
 * in an earlier boot and nobody reported it yet, marks it reported and
 * returns it; otherwise *ret_verdict is NULL. Needs the lock, not a loaded
 * state (nor the boot directory). */
gboolean sysroot_take_unreported_failure (Sysroot *self, Verdict **ret_verdict, GError **error);

/* The boot-time check for a staging lost without a verdict: if the
 * staged-pending marker outlived its staged record (an earlier boot) and
 * no verdict accounts for it (one of a finalize of its deployment since it
 * was staged), removes it and returns it; a marker a verdict accounts for
 * is removed silently; otherwise *ret_marker is NULL and
 * nothing changes. A marker that does not parse is removed and reported as
 * an error. Needs the lock, not a loaded state. */
gboolean sysroot_take_lost_staging (Sysroot *self, DeploymentRecord **ret_marker, GError **error);

/* The boot-time check for a failed boot (automatic boot assessment): when
 * the default the last successful finalize made ran out of boot tries and
 * the boot loader fell back (sysroot_assess_boot()), and that was not
 * reported yet, records it as reported (FAILED_BOOT_FILE) and returns it;
 * otherwise *ret_failed is NULL. The boot directory is opened (and the
 * state loaded) only when the last verdict is a success whose deployment
 * is not the one running: an update that applied never touches an
 * automounted /boot at boot. With no failure left, the record goes, so a
 * later failure of an entry of the same name is news again. Needs the
 * lock; @self may have been opened without the boot directory. */
gboolean sysroot_take_failed_boot (Sysroot *self, FailedBoot **ret_failed, GError **error);

/* The /etc merge at stage: records the new tree's pristine /etc in
 * @manifest, merges the running /etc into the tree's etc/ and writes the
 * state the finalize needs as <id>.etc-state below @os_dfd
 * (*ret_state_name; NULL when nothing is booted, so nothing is carried). */
gboolean sysroot_etc_merge_at_stage (Sysroot *self, int os_dfd, const char *id, int tree_dfd,
                                     Manifest *manifest, char **ret_state_name, GError **error);

/* The /etc merge at finalize: applies to @staged's etc/ what changed in
 * the running /etc since the stage. *ret_plan is the merge as applied
 * (conflicts included), NULL when there was nothing to merge. */
gboolean sysroot_etc_merge_at_finalize (Sysroot *self, const Deployment *staged,
                                        EtcMergePlan **ret_plan, GError **error);

/* Removes <id>.etc-state of @d (after its finalize committed). */
gboolean sysroot_etc_merge_forget (Sysroot *self, const Deployment *d, GError **error);

/* What a finalize would carry from the running /etc now (config-diff):
 * the local changes and, when an update is staged, the conflicts with it.
 * Needs a loaded state, not the lock (it only reads). */
gboolean sysroot_config_diff (Sysroot *self, EtcMergePlan **ret_plan, GError **error);

/* Writes the verdict file atomically and durably. */
gboolean sysroot_write_verdict (Sysroot *self, const Verdict *verdict, GError **error);

G_END_DECLS

/* Switching the default deployment: finalize (the staged one becomes the
 * default, at shutdown) and rollback (the previous one does). Both build
 * the complete new entry set and commit it with one atomic swap. */
#include "config.h"

#include "boot-kernel.h"
#include "boot-counting.h"
#include "errors.h"
#include "fsutil.h"
#include "journal.h"
#include "ops.h"

#include <stdio.h>
#include <string.h>

gboolean
sysroot_write_verdict (Sysroot *self, const Verdict *verdict, GError **error)
{
  gsize len;
  g_autofree char *data = verdict_to_data (verdict, &len);
  if (!fs_write_file_atomic_at (self->state_dfd, VERDICT_FILE, data, len, 0644, FS_WRITE_SYNC,
                                error))
    return prefix_error (error, "recording the verdict: ");
  return TRUE;
}

static gboolean
plan_contains (GPtrArray *plan, Deployment *d)
{
  for (guint i = 0; i < plan->len; i++)
    if (plan->pdata[i] == d)
      return TRUE;
  return FALSE;
}

/* The deployments of the new menu, default first: the new default, the
 * booted one (so there is always a way back to what runs now), then the
 * current menu in order; at most `retain` of them. */
static GPtrArray *
plan_menu (Sysroot *self, Deployment *new_default)
{
  GPtrArray *plan = g_ptr_array_new ();
  g_ptr_array_add (plan, new_default);
  if (self->booted && !plan_contains (plan, self->booted))
    g_ptr_array_add (plan, self->booted);
  /* self->deployments is sorted staged first, then by menu position. */
  for (guint i = 0; i < self->deployments->len; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (d->entry_index >= 0 && !plan_contains (plan, d))
        g_ptr_array_add (plan, d);
    }
  if (plan->len > self->config->retain)
    g_ptr_array_set_size (plan, MAX (self->config->retain, self->booted ? 2 : 1));
  return plan;
}

/* The kernels of every planned deployment must be in <boot>. They were
 * copied at stage time; this only copies one that went missing since, or
 * a file of its directory (a few stat calls per deployment otherwise). */
static gboolean
ensure_kernels (Sysroot *self, GPtrArray *plan, GError **error)
{
  for (guint i = 0; i < plan->len; i++)
    {
      Deployment *d = plan->pdata[i];
      autofd tree_dfd = -1;
      BootKernelAction action;
      if (!sysroot_open_deployment (self, d, &tree_dfd, error)
          || !boot_kernel_install (self->boot_dfd, tree_dfd, d->origin, &action, error))
        return FALSE;
      if (action == BOOT_KERNEL_INSTALLED)
        log_event (LOG_WARNING, NULL,
                   "the kernel of %s/%s was missing from the boot directory; copied it again",
                   d->os, d->id);
      else if (action == BOOT_KERNEL_REPAIRED)
        log_event (LOG_WARNING, NULL,
                   "the kernel directory of %s/%s in the boot directory was incomplete (a file "
                   "missing or of the wrong size); copied it again",
                   d->os, d->id);
    }
  return TRUE;
}

/* The live entry of @d (the first in menu order), or NULL. */
static const BootEntry *
live_entry_of (Sysroot *self, const Deployment *d)
{
  return d->entry_index >= 0 ? self->boot_config->entries->pdata[d->entry_index] : NULL;
}

static gboolean
switch_default_once (Sysroot *self, Deployment *new_default, Verdict *timings, GError **error)
{
  g_autoptr (GPtrArray) plan = plan_menu (self, new_default);

  verdict_begin_step (timings, "install-kernels");
  if (!ensure_kernels (self, plan, error))
    return FALSE;
  verdict_end_step (timings);

  verdict_begin_step (timings, "write-entries");
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  for (guint i = 0; i < plan->len; i++)
    {
      Deployment *d = plan->pdata[i];
      g_ptr_array_add (entries, boot_entry_new_for_origin (d->origin, plan->len - i));
    }
  /* A new set must not give a deployment the boot loader gave up on
   * ("+0-3") its tries back, nor restart the count of one still being
   * tried, nor put a counter on one that was blessed. Only a new default
   * without an entry yet (what a finalize brings) gets fresh tries; a
   * rollback goes to a deployment in the menu and keeps its counter. */
  boot_entries_carry_counters (entries, self->boot_config->entries,
                               boot_counting_tries (self, NULL));
  /* Another tool's entries are not in the plan: the swap carries over
   * whatever the live entries directory holds that is not stagehand's, as
   * it is then, whatever its name and type. */
  return boot_config_swap (self->boot_dfd, self->sysroot_dfd, self->boot_config, entries, timings,
                           error);
}

/* Another tool's entry written while the new set was being written would
 * be lost by the swap: boot_config_swap() notices, and the set is written
 * again from a fresh read, a bounded number of times. */
#define SWITCH_ATTEMPTS 3

static gboolean
switch_default (Sysroot *self, Deployment *new_default, Verdict *timings, GError **error)
{
  for (guint attempt = 1;; attempt++)
    {
      g_autoptr (GError) local_error = NULL;
      if (switch_default_once (self, new_default, timings, &local_error))
        return TRUE;
      if (attempt >= SWITCH_ATTEMPTS
          || !g_error_matches (local_error, STAGEHAND_ERROR, STAGEHAND_ERROR_CHANGED))
        {
          if (attempt > 1)
            g_prefix_error (&local_error, "(attempt %u) ", attempt);
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      log_event (LOG_NOTICE, NULL, "%s; reading it again and writing the new set again",
                 local_error->message);
      g_autoptr (BootConfig) fresh = NULL;
      if (!boot_config_load (self->boot_dfd, &fresh, error))
        return FALSE;
      boot_config_free (self->boot_config);
      self->boot_config = g_steal_pointer (&fresh);
    }
}

/* Before the entries: the merged /etc is complete (and, with the sync
 * step's syncfs, durable) before the commit point. Conflicts never fail
 * it; each is named in the verdict and the journal. */
static gboolean
merge_etc (Sysroot *self, Deployment *staged, Verdict *v, GError **error)
{
  verdict_begin_step (v, "etc-merge");
  g_autoptr (EtcMergePlan) plan = NULL;
  if (!sysroot_etc_merge_at_finalize (self, staged, &plan, error))
    return prefix_error (error, "/etc merge: ");
  verdict_end_step (v);
  if (plan == NULL)
    return TRUE;
  g_autofree char *name = deployment_name (staged);
  v->etc_merged = TRUE;
  v->etc_changes = plan->n_changes;
  for (guint i = 0; i < plan->items->len; i++)
    {
      const EtcMergeItem *item = plan->items->pdata[i];
      if (!item->conflict)
        continue;
      g_autofree char *path = etc_merge_display_path (item->path);
      g_autofree char *kept
          = item->new_beside
                ? g_strdup_printf (" (the new image's version is %s" ETC_MERGE_NEW_SUFFIX ")", path)
                : g_strdup ("");
      g_ptr_array_add (v->etc_conflicts, g_strdup_printf ("%s: %s%s", path, item->why, kept));
      LogFields f = { .message_id = MESSAGE_ID_ETC_CONFLICT,
                      .os = staged->os,
                      .deployment = name,
                      .step = "etc-merge" };
      log_event (LOG_WARNING, &f, "/etc merge into %s: %s: %s, the local version is kept%s", name,
                 path, item->why, kept);
    }
  return TRUE;
}

static void
tidy_after_commit (Sysroot *self, Verdict *timings)
{
  g_autoptr (GError) local_error = NULL;
  verdict_begin_step (timings, "tidy");
  if (!boot_config_tidy (self->boot_dfd, &local_error))
    log_event (LOG_WARNING, NULL, "after the swap, tidying the old entry set: %s",
               local_error->message);
  verdict_end_step (timings);
}

gboolean
sysroot_repair_interrupted_switch (Sysroot *self, GError **error)
{
  g_assert (self->loaded && self->lock != NULL);
  if (!self->boot_config->switch_interrupted)
    return TRUE;
  Deployment *d = self->default_deployment;
  if (d != NULL)
    {
      /* The menu as it stands, default first, each deployment once: what
       * plan_menu() makes of a menu that holds two sets. */
      if (!switch_default (self, d, NULL, error))
        return prefix_error (error, "completing an interrupted switch of the boot entries: ");
      log_event (LOG_NOTICE, NULL,
                 "completed an interrupted switch of the boot entries: %s/%s is the default", d->os,
                 d->id);
    }
  tidy_after_commit (self, NULL);
  return sysroot_load (self, error);
}

gboolean
sysroot_finalize_staged (Sysroot *self, Verdict **ret_verdict, GError **error)
{
  g_assert (self->loaded && self->lock != NULL);
  *ret_verdict = NULL;
  if (self->staged == NULL)
    return TRUE;

  Deployment *staged = self->staged;
  g_autofree char *name = deployment_name (staged);
  g_autoptr (Verdict) v = verdict_new ();
  v->started = g_get_real_time ();
  v->deployment = g_strdup (name);
  v->boot_id = sysroot_boot_id ();
  gint64 t0 = g_get_monotonic_time ();
  LogFields f = { .message_id = MESSAGE_ID_FINALIZE_START, .os = staged->os, .deployment = name };
  log_event (LOG_INFO, &f, "finalizing %s", name);

  g_autoptr (GError) local_error = NULL;
  if (!merge_etc (self, staged, v, &local_error) || !switch_default (self, staged, v, &local_error))
    {
      v->finished = g_get_real_time ();
      v->result = g_strdup (VERDICT_FAILED);
      v->error = g_strdup (local_error->message);
      g_autoptr (GError) verdict_error = NULL;
      if (!sysroot_write_verdict (self, v, &verdict_error))
        g_prefix_error (&local_error, "(%s) ", verdict_error->message);
      /* The verdict now tells the next boot; without one, the marker
       * still must. */
      else if (!sysroot_remove_pending (self, &verdict_error))
        log_event (LOG_WARNING, NULL, "%s", verdict_error->message);
      f.message_id = MESSAGE_ID_FINALIZE_FAILED;
      f.step = v->step;
      f.duration_usec = g_get_monotonic_time () - t0;
      log_event (LOG_ERR, &f, "finalizing %s failed during %s: %s", name, v->step,
                 local_error->message);
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                  "finalizing %s: during %s: ", name, v->step);
      *ret_verdict = g_steal_pointer (&v);
      return FALSE;
    }

  /* Past the commit point: the new configuration is live, so nothing below
   * can make this finalize fail; problems are warnings. */
  v->result = g_strdup (VERDICT_SUCCESS);
  v->finished = g_get_real_time ();
  if (!sysroot_write_verdict (self, v, &local_error))
    {
      log_event (LOG_WARNING, NULL, "after the swap: %s", local_error->message);
      g_clear_error (&local_error);
    }
  /* Removes the staged-pending marker too. */
  gboolean was_staged;
  if (!sysroot_unstage (self, &was_staged, &local_error))
    {
      log_event (LOG_WARNING, NULL, "after the swap: %s", local_error->message);
      g_clear_error (&local_error);
    }
  /* The merge's state is only for the finalize; the new /etc is live now. */
  if (!sysroot_etc_merge_forget (self, staged, &local_error))
    {
      log_event (LOG_WARNING, NULL, "after the swap: %s", local_error->message);
      g_clear_error (&local_error);
    }
  tidy_after_commit (self, v);

  f.message_id = MESSAGE_ID_FINALIZE_DONE;
  f.step = "finalize";
  f.duration_usec = g_get_monotonic_time () - t0;
  log_event (LOG_INFO, &f, "finalized %s: it is the default from the next boot", name);
  *ret_verdict = g_steal_pointer (&v);
  return TRUE;
}

gboolean
sysroot_rollback (Sysroot *self, char **ret_deployment, GError **error)
{
  g_assert (self->loaded && self->lock != NULL);
  if (self->staged != NULL)
    return throw_error (error, STAGEHAND_ERROR_STATE,
                        "%s/%s is staged and a rollback would silently drop it; run 'stagehand "
                        "unstage' first",
                        self->staged->os, self->staged->id);

  /* Never to a deployment the boot loader gave up on (no tries left):
   * that fallback is permanent. */
  Deployment *target = NULL;
  g_autoptr (GString) failed = g_string_new (NULL);
  for (guint i = 0; i < self->deployments->len && target == NULL; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (d->entry_index < 0 || d == self->default_deployment)
        continue;
      if (boot_entry_is_exhausted (live_entry_of (self, d)))
        g_string_append_printf (failed, "%s%s/%s", failed->len ? ", " : "", d->os, d->id);
      else
        target = d;
    }
  if (target == NULL && failed->len > 0)
    return throw_error (error, STAGEHAND_ERROR_STATE,
                        "there is no previous deployment in the boot menu to roll back to (%s "
                        "failed to boot: the boot loader ran out of tries; stage a new image)",
                        failed->str);
  if (target == NULL)
    return throw_error (error, STAGEHAND_ERROR_STATE,
                        "there is no previous deployment in the boot menu to roll back to");

  if (!switch_default (self, target, NULL, error))
    return prefix_error (error, "rolling back to %s/%s: ", target->os, target->id);
  tidy_after_commit (self, NULL);
  *ret_deployment = deployment_name (target);
  return TRUE;
}

gboolean
sysroot_take_unreported_failure (Sysroot *self, Verdict **ret_verdict, GError **error)
{
  g_assert (self->lock != NULL);
  *ret_verdict = NULL;
  if (!sysroot_load_verdict (self, error))
    return FALSE;
  Verdict *v = self->last_verdict;
  if (v == NULL || v->reported || g_strcmp0 (v->result, VERDICT_SUCCESS) == 0)
    return TRUE;
  /* A failure of this very boot (a `deploy` that failed) is not the
   * previous boot's news; the command that failed already said so. */
  g_autofree char *boot_id = sysroot_boot_id ();
  if (boot_id != NULL && g_strcmp0 (v->boot_id, boot_id) == 0)
    return TRUE;
  v->reported = TRUE;
  if (!sysroot_write_verdict (self, v, error))
    return FALSE;
  *ret_verdict = g_steal_pointer (&self->last_verdict);
  return TRUE;
}

gboolean
sysroot_take_lost_staging (Sysroot *self, DeploymentRecord **ret_marker, GError **error)
{
  g_assert (self->lock != NULL);
  *ret_marker = NULL;
  gboolean staged_exists;
  if (!sysroot_has_staged_record (self, &staged_exists, error))
    return FALSE;
  /* The staged record is in /run: while it is there, this is the boot
   * that staged it, and its finalize may still come. */
  if (staged_exists)
    return TRUE;
  g_autoptr (GError) local_error = NULL;
  if (!sysroot_load_pending (self, &local_error))
    {
      if (!g_error_matches (local_error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      /* Reported once, like a lost staging, and then gone: all it can say
       * is that something was staged. */
      if (!sysroot_remove_pending (self, error))
        return FALSE;
      return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                          "%s; removed it. A deployment staged in an earlier boot may never have "
                          "been finalized: check that 'stagehand status' shows the default you "
                          "expect",
                          local_error->message);
    }
  if (!sysroot_load_verdict (self, error))
    return FALSE;
  g_autofree char *booted = sysroot_booted_name (self);
  switch (pending_marker_assess (self->pending, staged_exists, self->last_verdict, booted))
    {
    case PENDING_NONE:
    case PENDING_STAGED:
      return TRUE;
    case PENDING_FINALIZED:
      return sysroot_remove_pending (self, error);
    case PENDING_LOST:
      if (!sysroot_remove_pending (self, error))
        return FALSE;
      *ret_marker = g_steal_pointer (&self->pending);
      return TRUE;
    }
  g_assert_not_reached ();
}

static gboolean
write_failed_boot_record (Sysroot *self, const FailedBoot *failed, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *boot_id = sysroot_boot_id ();
  g_key_file_set_string (kf, "failed-boot", "deployment", failed->deployment);
  g_key_file_set_string (kf, "failed-boot", "entry", failed->entry_id);
  g_key_file_set_uint64 (kf, "failed-boot", "tries", failed->tries);
  if (failed->running != NULL)
    g_key_file_set_string (kf, "failed-boot", "running", failed->running);
  if (boot_id != NULL)
    g_key_file_set_string (kf, "failed-boot", "boot-id", boot_id);
  g_key_file_set_int64 (kf, "failed-boot", "reported-usec", g_get_real_time ());
  gsize len;
  g_autofree char *data = g_key_file_to_data (kf, &len, NULL);
  if (!fs_write_file_atomic_at (self->state_dfd, FAILED_BOOT_FILE, data, len, 0644, FS_WRITE_SYNC,
                                error))
    return prefix_error (error,
                         "recording the reported failed boot in %s/" STATE_DIR "/%s: ", self->path,
                         FAILED_BOOT_FILE);
  return TRUE;
}

gboolean
sysroot_take_failed_boot (Sysroot *self, FailedBoot **ret_failed, GError **error)
{
  g_assert (self->lock != NULL);
  *ret_failed = NULL;
  if (!sysroot_load_verdict (self, error))
    return FALSE;
  const Verdict *v = self->last_verdict;
  g_autofree char *booted = sysroot_booted_name (self);
  /* Only a finalize that succeeded makes a default with fresh tries; if
   * that default is what runs, the update applied. */
  if (v == NULL || g_strcmp0 (v->result, VERDICT_SUCCESS) != 0
      || (booted != NULL && g_strcmp0 (v->deployment, booted) == 0))
    return TRUE;
  if (!sysroot_open_boot (self, error) || !sysroot_load (self, error))
    return FALSE;
  g_autoptr (FailedBoot) failed = sysroot_assess_boot (self);
  if (failed == NULL)
    return fs_unlink_at_optional (self->state_dfd, FAILED_BOOT_FILE, 0, error);
  if (failed->reported)
    return TRUE;
  if (!write_failed_boot_record (self, failed, error))
    return FALSE;
  *ret_failed = g_steal_pointer (&failed);
  return TRUE;
}

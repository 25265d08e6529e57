/* Switching the default deployment: finalize (the staged one becomes the
 * default, at shutdown) and rollback (the previous one does). Both build
 * the complete new entry set and commit it with one atomic swap. */
#include "config.h"

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
 * copied at stage time; this only copies one that went missing since. */
static gboolean
ensure_kernels (Sysroot *self, GPtrArray *plan, GError **error)
{
  for (guint i = 0; i < plan->len; i++)
    {
      Deployment *d = plan->pdata[i];
      if (boot_config_has_kernel (self->boot_dfd, d->origin))
        continue;
      autofd tree_dfd = -1;
      if (!sysroot_open_deployment (self, d, &tree_dfd, error)
          || !boot_config_install_kernel (self->boot_dfd, tree_dfd, d->origin, error))
        return FALSE;
      log_event (LOG_WARNING, NULL,
                 "the kernel of %s/%s was missing from the boot directory; copied it again", d->os,
                 d->id);
    }
  return TRUE;
}

static gboolean
switch_default (Sysroot *self, Deployment *new_default, Verdict *timings, GError **error)
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
  /* Never lose another tool's entry: carry it over byte for byte. */
  GPtrArray *current = self->boot_config->entries;
  for (guint i = 0; i < current->len; i++)
    {
      BootEntry *e = current->pdata[i];
      if (boot_entry_is_ours (e))
        continue;
      if (e->unreadable)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                            "another tool's entry %s/%s cannot be read, so the new entry set "
                            "cannot carry it over (repair or remove it)",
                            self->boot_config->entries_path, e->filename);
      BootEntry *copy = g_new0 (BootEntry, 1);
      copy->filename = g_strdup (e->filename);
      copy->raw = g_memdup2 (e->raw, e->raw_len + 1);
      copy->raw_len = e->raw_len;
      g_ptr_array_add (entries, copy);
    }

  return boot_config_swap (self->boot_dfd, self->sysroot_dfd, self->boot_config, entries, timings,
                           error);
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

  Deployment *target = NULL;
  for (guint i = 0; i < self->deployments->len && target == NULL; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (d->entry_index >= 0 && d != self->default_deployment)
        target = d;
    }
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

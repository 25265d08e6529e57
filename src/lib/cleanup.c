/* Removing what nothing refers to: deployments outside the live menu that
 * are neither staged nor booted, kernels no kept deployment uses, and the
 * leftovers of interrupted runs (temp names, trees without an origin). */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "journal.h"
#include "ops.h"
#include "osrelease.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static gboolean
is_kept (Deployment *d, Sysroot *self)
{
  return d->entry_index >= 0 || d == self->staged || d == self->booted;
}

/* One tree that cannot be removed must not keep the rest from going: a
 * leftover .import-tmp-* that could not be removed used to stop every later
 * cleanup before the old kernels and deployments, and /boot filled up. So
 * each removal that fails is noted and the next one runs; the first error
 * is what the cleanup returns (with the count), later ones are warnings. */
typedef struct
{
  Sysroot *self;
  CleanupStats *stats;
  guint failed;
  GError *first_error;
  /* Deployments whose origin could not be removed: they still exist, so
   * their kernels stay. */
  GPtrArray *still_there;
} CleanupRun;

/* Notes the failure in @local_error (taken); always TRUE, to go on. */
static gboolean
cleanup_failed (CleanupRun *run, GError *local_error)
{
  if (run->failed++ == 0)
    run->first_error = local_error;
  else
    {
      log_event (LOG_WARNING, NULL, "cleanup: %s", local_error->message);
      g_error_free (local_error);
    }
  return TRUE;
}

/* fs_rm_rf_at() of @name below @dfd; a failure is noted, with @what
 * ("deployment debian/3: ") in front. FALSE if it failed. */
static gboolean
cleanup_remove (CleanupRun *run, int dfd, const char *name, const char *what)
{
  GError *local_error = NULL;
  if (fs_rm_rf_at (dfd, name, &local_error))
    return TRUE;
  if (what != NULL)
    g_prefix_error (&local_error, "%s", what);
  cleanup_failed (run, local_error);
  return FALSE;
}

static gboolean
cleanup_os_dir (CleanupRun *run, int deploy_dfd, const char *os, GError **error)
{
  Sysroot *self = run->self;
  CleanupStats *stats = run->stats;
  autofd os_dfd = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at (deploy_dfd, os, &os_dfd, error) || !fs_list_dir (os_dfd, os, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (fs_is_temp_name (name))
        {
          g_autofree char *what = g_strdup_printf ("%s: ", os);
          if (cleanup_remove (run, os_dfd, name, what))
            stats->temp_removed++;
          continue;
        }
      const char *suffix = g_str_has_suffix (name, ".manifest")        ? ".manifest"
                           : g_str_has_suffix (name, ETC_STATE_SUFFIX) ? ETC_STATE_SUFFIX
                                                                       : NULL;
      if (suffix != NULL)
        {
          /* Normally removed with its tree (below); one whose tree is gone
           * describes nothing. */
          g_autofree char *id = g_strndup (name, strlen (name) - strlen (suffix));
          struct stat st;
          if (deployment_id_is_valid (id) && fstatat (os_dfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0
              && errno == ENOENT)
            {
              /* ENOENT: removed with its tree earlier in this listing. */
              if (unlinkat (os_dfd, name, 0) == 0)
                stats->temp_removed++;
              else if (errno != ENOENT)
                {
                  GError *local_error = NULL;
                  throw_errno (&local_error, "removing %s/%s", os, name);
                  cleanup_failed (run, local_error);
                }
            }
          continue;
        }
      if (!deployment_id_is_valid (name))
        continue; /* "<id>.origin" files are handled with their tree */
      Deployment *d = sysroot_find_deployment (self, os, name);
      if (d != NULL && is_kept (d, self))
        continue;
      /* The origin goes first: without it the tree is no longer a
       * deployment, so an interrupted removal is finished by the next
       * cleanup. Then the manifest, while the tree still names the id. The
       * tree's files may be hard links shared with other deployments:
       * unlinking only drops this deployment's names for them. */
      g_autofree char *origin = g_strdup_printf ("%s.origin", name);
      g_autofree char *manifest = g_strdup_printf ("%s.manifest", name);
      g_autofree char *what = g_strdup_printf ("removing deployment %s/%s: ", os, name);
      g_autofree char *etc_state = g_strdup_printf ("%s" ETC_STATE_SUFFIX, name);
      GError *local_error = NULL;
      if (!fs_unlink_at_optional (os_dfd, origin, 0, &local_error)
          || !fs_unlink_at_optional (os_dfd, manifest, 0, &local_error)
          || !fs_unlink_at_optional (os_dfd, etc_state, 0, &local_error))
        {
          g_prefix_error (&local_error, "%s", what);
          cleanup_failed (run, local_error);
          if (d != NULL)
            g_ptr_array_add (run->still_there, d);
          continue;
        }
      if (!cleanup_remove (run, os_dfd, name, what))
        continue;
      if (d != NULL)
        stats->deployments_removed++;
      else
        stats->temp_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_deployments (CleanupRun *run, GError **error)
{
  autofd deploy_dfd = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at_optional (run->self->state_dfd, DEPLOY_DIR, &deploy_dfd, error))
    return FALSE;
  if (deploy_dfd < 0)
    return TRUE;
  if (!fs_list_dir (deploy_dfd, DEPLOY_DIR, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      GError *local_error = NULL;
      if (fs_is_temp_name (name))
        {
          if (cleanup_remove (run, deploy_dfd, name, NULL))
            run->stats->temp_removed++;
        }
      else if (os_name_is_valid (name) && !cleanup_os_dir (run, deploy_dfd, name, &local_error))
        cleanup_failed (run, local_error);
    }
  return TRUE;
}

static gboolean
cleanup_kernels (CleanupRun *run, GError **error)
{
  Sysroot *self = run->self;
  g_autoptr (GHashTable) keep = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < self->deployments->len; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (is_kept (d, self))
        g_hash_table_add (keep, origin_boot_dir_name (d->origin));
    }
  for (guint i = 0; i < run->still_there->len; i++)
    {
      Deployment *d = run->still_there->pdata[i];
      g_hash_table_add (keep, origin_boot_dir_name (d->origin));
    }

  autofd kdir = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at_optional (self->boot_dfd, BOOT_KERNEL_DIR, &kdir, error))
    return FALSE;
  if (kdir < 0)
    return TRUE;
  if (!fs_list_dir (kdir, BOOT_KERNEL_DIR, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (g_hash_table_contains (keep, name))
        continue;
      g_autofree char *what = g_strdup_printf ("removing kernel %s: ", name);
      if (!cleanup_remove (run, kdir, name, what))
        continue;
      if (fs_is_temp_name (name))
        run->stats->temp_removed++;
      else
        run->stats->kernels_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_boot_leftovers (CleanupRun *run, GError **error)
{
  Sysroot *self = run->self;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (self->boot_dfd, self->boot_path, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      /* <boot> is shared with other tools: only the exact temp name of
       * the loader symlink is ours. */
      if (!fs_is_temp_name_of (name, "loader"))
        continue;
      if (cleanup_remove (run, self->boot_dfd, name, NULL))
        run->stats->temp_removed++;
    }
  return boot_config_tidy (self->boot_dfd, error);
}

/* The verdict, the staged-pending marker and the staged record are written
 * as temp file + rename; a run killed in between leaves the temp file in
 * the state or the runtime directory. Every writer there holds the lock
 * (but the not-attempted verdict, written exactly when the lock could not
 * be had: at worst that best-effort record is lost), so under the lock a
 * temp name is a leftover. */
static gboolean
cleanup_temp_files (CleanupRun *run, int dfd, const char *what, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (dfd, what, &names, error))
    return FALSE;
  g_autofree char *prefix = g_strdup_printf ("%s: ", what);
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (fs_is_temp_name (name) && cleanup_remove (run, dfd, name, prefix))
        run->stats->temp_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_state_leftovers (CleanupRun *run, GError **error)
{
  Sysroot *self = run->self;
  autofd run_dfd = -1;
  GError *local_error = NULL;
  if (!cleanup_temp_files (run, self->state_dfd, STATE_DIR, &local_error))
    cleanup_failed (run, local_error);
  if (!sysroot_open_run_dir (self, FALSE, &run_dfd, error))
    return FALSE;
  return run_dfd < 0 || cleanup_temp_files (run, run_dfd, self->run_path, error);
}

gboolean
sysroot_cleanup (Sysroot *self, CleanupStats *ret_stats, GError **error)
{
  g_assert (self->loaded && self->lock != NULL);
  CleanupStats stats = { 0 };
  *ret_stats = stats;
  /* Without a loader there is no menu to keep deployments for: a boot
   * directory that is not mounted, or a wrong --boot, would make every
   * deployment but the staged and the booted one look unreferenced. */
  if (self->boot_config->mode == BOOT_MODE_NONE)
    return throw_error (error, STAGEHAND_ERROR_NOT_INITIALIZED,
                        "cleanup: the boot directory %s has no loader (not initialised, or not "
                        "mounted?); refusing to remove deployments that its entries may name",
                        self->boot_path);
  /* First: a menu that holds two sets names deployments the whole one
   * will not keep. Nothing is removed before it is one set again. */
  if (!sysroot_repair_interrupted_switch (self, error))
    return FALSE;
  g_autoptr (GPtrArray) still_there = g_ptr_array_new ();
  CleanupRun run = { .self = self, .stats = &stats, .still_there = still_there };
  gboolean (*const steps[]) (CleanupRun *, GError **) = {
    cleanup_deployments,
    cleanup_kernels,
    cleanup_boot_leftovers,
    cleanup_state_leftovers,
  };
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      GError *local_error = NULL;
      if (!steps[i](&run, &local_error))
        cleanup_failed (&run, local_error);
    }
  *ret_stats = stats;
  if (run.failed == 0)
    return TRUE;
  g_propagate_error (error, run.first_error);
  if (run.failed > 1)
    return prefix_error (
        error, "cleanup: %u things could not be removed (the rest was); the first: ", run.failed);
  return prefix_error (error, "cleanup: one thing could not be removed (the rest was): ");
}

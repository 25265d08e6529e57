/* Removing what nothing refers to: deployments outside the live menu that
 * are neither staged nor booted, kernels no kept deployment uses, and the
 * leftovers of interrupted runs (temp names, trees without an origin). */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
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

static gboolean
cleanup_os_dir (Sysroot *self, int deploy_dfd, const char *os, CleanupStats *stats, GError **error)
{
  autofd os_dfd = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at (deploy_dfd, os, &os_dfd, error) || !fs_list_dir (os_dfd, os, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (fs_is_temp_name (name))
        {
          if (!fs_rm_rf_at (os_dfd, name, error))
            return FALSE;
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
                return throw_errno (error, "removing %s/%s", os, name);
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
      g_autofree char *etc_state = g_strdup_printf ("%s" ETC_STATE_SUFFIX, name);
      if (!fs_unlink_at_optional (os_dfd, origin, 0, error)
          || !fs_unlink_at_optional (os_dfd, manifest, 0, error)
          || !fs_unlink_at_optional (os_dfd, etc_state, 0, error)
          || !fs_rm_rf_at (os_dfd, name, error))
        return prefix_error (error, "removing deployment %s/%s: ", os, name);
      if (d != NULL)
        stats->deployments_removed++;
      else
        stats->temp_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_deployments (Sysroot *self, CleanupStats *stats, GError **error)
{
  autofd deploy_dfd = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at_optional (self->state_dfd, DEPLOY_DIR, &deploy_dfd, error))
    return FALSE;
  if (deploy_dfd < 0)
    return TRUE;
  if (!fs_list_dir (deploy_dfd, DEPLOY_DIR, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (fs_is_temp_name (name))
        {
          if (!fs_rm_rf_at (deploy_dfd, name, error))
            return FALSE;
          stats->temp_removed++;
        }
      else if (os_name_is_valid (name) && !cleanup_os_dir (self, deploy_dfd, name, stats, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
cleanup_kernels (Sysroot *self, CleanupStats *stats, GError **error)
{
  g_autoptr (GHashTable) keep = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < self->deployments->len; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (is_kept (d, self))
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
      if (!fs_rm_rf_at (kdir, name, error))
        return prefix_error (error, "removing kernel %s: ", name);
      if (fs_is_temp_name (name))
        stats->temp_removed++;
      else
        stats->kernels_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_boot_leftovers (Sysroot *self, CleanupStats *stats, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (self->boot_dfd, self->boot_path, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (!fs_is_temp_name (name) || !g_str_has_prefix (name, ".loader"))
        continue;
      if (!fs_rm_rf_at (self->boot_dfd, name, error))
        return FALSE;
      stats->temp_removed++;
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
cleanup_temp_files (int dfd, const char *what, CleanupStats *stats, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (dfd, what, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (!fs_is_temp_name (name))
        continue;
      if (!fs_rm_rf_at (dfd, name, error))
        return prefix_error (error, "%s: ", what);
      stats->temp_removed++;
    }
  return TRUE;
}

static gboolean
cleanup_state_leftovers (Sysroot *self, CleanupStats *stats, GError **error)
{
  autofd run_dfd = -1;
  if (!cleanup_temp_files (self->state_dfd, STATE_DIR, stats, error)
      || !sysroot_open_run_dir (self, FALSE, &run_dfd, error))
    return FALSE;
  return run_dfd < 0 || cleanup_temp_files (run_dfd, self->run_path, stats, error);
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
  gboolean ok = cleanup_deployments (self, &stats, error) && cleanup_kernels (self, &stats, error)
                && cleanup_boot_leftovers (self, &stats, error)
                && cleanup_state_leftovers (self, &stats, error);
  *ret_stats = stats;
  if (!ok)
    return prefix_error (error, "cleanup: ");
  return TRUE;
}

/* The /etc merge in a sysroot: which trees are merged, where stage leaves
 * its state for the finalize, and the config-diff view. The merge itself
 * is etc-merge.c. See docs/design.md, "/etc across updates". */
#include "config.h"

#include "errors.h"
#include "etc-merge.h"
#include "journal.h"
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

/* The state file lists every path of /etc once: a few hundred KiB for a
 * real /etc; a file past this bound is refused unread (docs, "Bounds"). */
#define ETC_STATE_MAX ((gsize)64 << 20)

static char *
state_name (const char *id)
{
  return g_strdup_printf ("%s" ETC_STATE_SUFFIX, id);
}

/* The running /etc: the booted deployment's etc/ (booted as /, that is
 * the running system's /etc). -1 when nothing is booted from this sysroot
 * (an image build, a test sysroot without STAGEHAND_DEBUG_CMDLINE), or the
 * booted tree has no etc/: then there is nothing to carry. */
static gboolean
open_running_etc (Sysroot *self, int *ret_fd, GError **error)
{
  *ret_fd = -1;
  if (self->booted == NULL)
    return TRUE;
  autofd tree_dfd = -1;
  if (!sysroot_open_deployment (self, self->booted, &tree_dfd, error))
    return FALSE;
  return fs_opendir_at_optional (tree_dfd, "etc", ret_fd, error);
}

/* The booted deployment's pristine /etc, from its manifest; NULL when it
 * records none. */
static gboolean
load_pristine (Sysroot *self, EtcTree **ret_tree, GError **error)
{
  autofd os_dfd = -1;
  g_autofree char *dir = g_strdup_printf (DEPLOY_DIR "/%s", self->booted->os);
  g_autofree char *name = g_strdup_printf ("%s.manifest", self->booted->id);
  g_autoptr (Manifest) manifest = NULL;
  g_autoptr (GError) local_error = NULL;
  if (!fs_opendir_at (self->state_dfd, dir, &os_dfd, error))
    return FALSE;
  if (!manifest_load_at (os_dfd, name, &manifest, &local_error))
    {
      /* A damaged record must not block the update: the merge then keeps
       * every local difference, as for a deployment without one. */
      log_event (LOG_WARNING, NULL, "/etc merge: %s; treating the pristine /etc as unknown",
                 local_error->message);
      *ret_tree = NULL;
      return TRUE;
    }
  *ret_tree = etc_tree_from_manifest (manifest);
  return TRUE;
}

gboolean
sysroot_etc_merge_at_stage (Sysroot *self, int os_dfd, const char *id, int tree_dfd,
                            Manifest *manifest, char **ret_state_name, GError **error)
{
  *ret_state_name = NULL;
  if (!fs_ensure_dir_at (tree_dfd, "etc", 0755, error))
    return prefix_error (error, "/etc merge: ");
  autofd new_etc = -1;
  g_autoptr (EtcMergeState) state = g_new0 (EtcMergeState, 1);
  if (!fs_opendir_at (tree_dfd, "etc", &new_etc, error)
      || !etc_tree_scan (new_etc, "the new image's /etc", NULL, &state->new_tree, error)
      || !etc_tree_add_to_manifest (state->new_tree, new_etc, manifest, error))
    return prefix_error (error, "/etc merge: ");

  autofd running_etc = -1;
  if (!open_running_etc (self, &running_etc, error))
    return prefix_error (error, "/etc merge: ");
  if (running_etc < 0)
    return TRUE;
  if (!load_pristine (self, &state->pristine, error)
      || !etc_tree_scan (running_etc, "/etc", NULL, &state->running, error))
    return prefix_error (error, "/etc merge: ");
  g_autoptr (EtcMergePlan) plan = etc_merge_plan (state->pristine, state->running, state->new_tree);
  if (!etc_merge_apply (running_etc, new_etc, os_dfd, plan, state->running, state->new_tree, NULL,
                        NULL, error))
    return prefix_error (error, "/etc merge: ");

  gsize len;
  g_autofree char *data = etc_merge_state_to_data (state, &len);
  g_autofree char *name = state_name (id);
  /* Durable with the tree: the stage's syncfs follows. */
  if (!fs_write_file_atomic_at (os_dfd, name, data, len, 0644, FS_WRITE_NONE, error))
    return prefix_error (error, "/etc merge: writing %s: ", name);
  log_event (LOG_INFO, NULL,
             "/etc merge: %u local changes carried into %s/%s, %u conflicts (so far: the "
             "finalize adds what changes until shutdown)",
             plan->n_changes, DEPLOY_DIR, id, plan->n_conflicts);
  *ret_state_name = g_steal_pointer (&name);
  return TRUE;
}

static gboolean
load_state (Sysroot *self, const Deployment *d, EtcMergeState **ret_state, GError **error)
{
  *ret_state = NULL;
  autofd os_dfd = -1;
  g_autofree char *dir = g_strdup_printf (DEPLOY_DIR "/%s", d->os);
  g_autofree char *name = state_name (d->id);
  g_autofree char *data = NULL;
  gsize len;
  if (!fs_opendir_at (self->state_dfd, dir, &os_dfd, error)
      || !fs_read_file_at_optional (os_dfd, name, ETC_STATE_MAX, &data, &len, error))
    return FALSE;
  if (data == NULL)
    return TRUE;
  g_autofree char *what = g_strdup_printf ("%s/%s/%s/%s", STATE_DIR, DEPLOY_DIR, d->os, name);
  return etc_merge_state_parse (data, len, what, ret_state, error);
}

gboolean
sysroot_etc_merge_at_finalize (Sysroot *self, const Deployment *staged, EtcMergePlan **ret_plan,
                               GError **error)
{
  *ret_plan = NULL;
  g_autoptr (EtcMergeState) state = NULL;
  autofd running_etc = -1;
  if (!load_state (self, staged, &state, error))
    return FALSE;
  if (state == NULL)
    return TRUE; /* nothing was booted at stage time: nothing to carry */
  if (!open_running_etc (self, &running_etc, error))
    return FALSE;
  if (running_etc < 0)
    return TRUE;

  /* Only what changed since the stage is read (stat unchanged: the stage's
   * hashes) and applied. */
  g_autoptr (EtcTree) running = NULL;
  autofd tree_dfd = -1;
  autofd new_etc = -1;
  autofd os_dfd = -1;
  g_autofree char *dir = g_strdup_printf (DEPLOY_DIR "/%s", staged->os);
  if (!etc_tree_scan (running_etc, "/etc", state->running, &running, error)
      || !sysroot_open_deployment (self, staged, &tree_dfd, error)
      || !fs_opendir_at (tree_dfd, "etc", &new_etc, error)
      || !fs_opendir_at (self->state_dfd, dir, &os_dfd, error))
    return FALSE;
  g_autoptr (EtcMergePlan) before
      = etc_merge_plan (state->pristine, state->running, state->new_tree);
  g_autoptr (EtcMergePlan) plan = etc_merge_plan (state->pristine, running, state->new_tree);
  if (!etc_merge_apply (running_etc, new_etc, os_dfd, plan, running, state->new_tree, before,
                        state->running, error))
    return FALSE;

  /* What is applied now, so that a finalize run again (after a failure
   * later on) starts from here; nothing to write when nothing changed. */
  if (etc_tree_equal (running, state->running))
    {
      *ret_plan = g_steal_pointer (&plan);
      return TRUE;
    }
  etc_tree_free (state->running);
  state->running = g_steal_pointer (&running);
  gsize len;
  g_autofree char *data = etc_merge_state_to_data (state, &len);
  g_autofree char *name = state_name (staged->id);
  if (!fs_write_file_atomic_at (os_dfd, name, data, len, 0644, FS_WRITE_NONE, error))
    return prefix_error (error, "writing %s: ", name);
  *ret_plan = g_steal_pointer (&plan);
  return TRUE;
}

gboolean
sysroot_etc_merge_forget (Sysroot *self, const Deployment *d, GError **error)
{
  autofd os_dfd = -1;
  g_autofree char *dir = g_strdup_printf (DEPLOY_DIR "/%s", d->os);
  g_autofree char *name = state_name (d->id);
  if (!fs_opendir_at (self->state_dfd, dir, &os_dfd, error)
      || !fs_unlink_at_optional (os_dfd, name, 0, error))
    return prefix_error (error, "removing %s: ", name);
  return TRUE;
}

gboolean
sysroot_config_diff (Sysroot *self, EtcMergePlan **ret_plan, GError **error)
{
  *ret_plan = NULL;
  autofd running_etc = -1;
  if (!open_running_etc (self, &running_etc, error))
    return FALSE;
  if (running_etc < 0)
    return throw_error (error, STAGEHAND_ERROR_STATE,
                        "no deployment of this sysroot is booted (no stagehand= on the kernel "
                        "command line), so there is no /etc to compare");
  g_autoptr (EtcMergeState) state = NULL;
  if (self->staged != NULL && !load_state (self, self->staged, &state, error))
    return FALSE;
  g_autoptr (EtcTree) pristine = NULL;
  if (state == NULL && !load_pristine (self, &pristine, error))
    return FALSE;
  EtcTree *o = state ? state->pristine : pristine;
  g_autoptr (EtcTree) running = NULL;
  if (!etc_tree_scan (running_etc, "/etc", state ? state->running : NULL, &running, error))
    return FALSE;
  /* With nothing staged there is no new image to conflict with: compare
   * against the pristine /etc itself. */
  const EtcTree *n = state ? state->new_tree : o ? o : running;
  *ret_plan = etc_merge_plan (o, running, n);
  return TRUE;
}

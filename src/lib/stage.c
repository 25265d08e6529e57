/* Staging: a new deployment tree, its kernel in <boot>, and the staged
 * record. Everything slow happens here, at stage time, so that finalize at
 * shutdown only writes a few small files and renames one link. */
#include "config.h"

#include "boot-kernel.h"
#include "errors.h"
#include "fsutil.h"
#include "journal.h"
#include "karg.h"
#include "kernel.h"
#include "manifest.h"
#include "ops.h"
#include "osrelease.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The next deployment id: one more than any id (complete or not) under
 * deploy/, so an interrupted stage's leftovers never collide. */
static gboolean
next_deployment_id (int deploy_dfd, char **ret_id, GError **error)
{
  guint64 max = 0;
  g_autoptr (GPtrArray) oses = NULL;
  if (!fs_list_dir (deploy_dfd, DEPLOY_DIR, &oses, error))
    return FALSE;
  for (guint i = 0; i < oses->len; i++)
    {
      const char *os = oses->pdata[i];
      autofd os_dfd = -1;
      g_autoptr (GPtrArray) names = NULL;
      if (!os_name_is_valid (os))
        continue;
      if (!fs_opendir_at (deploy_dfd, os, &os_dfd, error)
          || !fs_list_dir (os_dfd, os, &names, error))
        return FALSE;
      for (guint j = 0; j < names->len; j++)
        if (g_ascii_isdigit (((char *)names->pdata[j])[0]))
          max = MAX (max, g_ascii_strtoull (names->pdata[j], NULL, 10));
    }
  *ret_id = g_strdup_printf ("%" G_GUINT64_FORMAT, max + 1);
  return TRUE;
}

/* The entry whose kernel arguments a new deployment inherits: stagehand's
 * first entry in the menu (its default, unless another tool's entry sorts
 * before it), else, on a first install, the default entry of another tool
 * (*ret_foreign), or NULL. */
static const BootEntry *
inherited_entry (GPtrArray *entries, gboolean *ret_foreign)
{
  *ret_foreign = FALSE;
  for (guint i = 0; i < entries->len; i++)
    if (boot_entry_is_ours (entries->pdata[i]))
      return entries->pdata[i];
  *ret_foreign = entries->len > 0;
  return entries->len > 0 ? entries->pdata[0] : NULL;
}

/* Kernel arguments of a new deployment: those of stagehand's current
 * default entry, amended by stagehand.conf, then by --karg. */
static gboolean
compute_kargs (Sysroot *self, char *const *cli_kargs, char ***ret_kargs, GError **error)
{
  gboolean foreign;
  const BootEntry *current = inherited_entry (self->boot_config->entries, &foreign);
  g_autoptr (GPtrArray) base = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) left_out = g_string_new (NULL);
  g_auto (GStrv) inherited = kargs_split (current ? current->options : NULL);
  for (char **k = inherited; *k; k++)
    {
      if (g_str_has_prefix (*k, KARG_DEPLOYMENT_KEY "="))
        continue; /* replaced, not inherited */
      /* Inherited as they are, so they must be fit for an entry and for
       * the origin file, like --karg. Our own entry's are (an error means
       * it was damaged); another tool's entry may hold anything, and one
       * argument of it must not stop every first install: it is left out,
       * and said so. */
      g_autoptr (GError) local_error = NULL;
      if (!karg_validate (*k, &local_error))
        {
          if (!foreign)
            {
              g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                          "inheriting the kernel arguments of the default entry "
                                          "%s: ",
                                          current->filename);
              return FALSE;
            }
          g_string_append_printf (left_out, "; left out an argument: %s", local_error->message);
          continue;
        }
      g_ptr_array_add (base, g_strdup (*k));
    }
  g_ptr_array_add (base, NULL);
  /* A first install next to another tool's entries (a distribution's
   * kernel-install entry) takes that entry's arguments, which keeps its
   * root=; but they were another tool's choice, so it says so. */
  if (foreign)
    {
      g_autofree char *joined = g_strjoinv (" ", (char **)base->pdata);
      log_event (LOG_WARNING, NULL,
                 "no stagehand entry in the boot menu yet: the new deployment inherits the kernel "
                 "arguments of another tool's entry %s/%s: \"%s\"%s (add or replace arguments "
                 "with --karg or kargs= in stagehand.conf)",
                 self->boot_config->entries_path, current->filename, joined, left_out->str);
    }
  g_auto (GStrv) with_config = kargs_amend ((char **)base->pdata, self->config->kargs);
  *ret_kargs = kargs_amend (with_config, cli_kargs);
  return TRUE;
}

typedef struct
{
  int deploy_dfd;
  char *os_dir;             /* "<os>" once the tree has its final name */
  gboolean os_dir_created;  /* this stage created deploy/<os>/ */
  char *tree_name;          /* name below deploy_dfd (temp) or below os_dir (final) */
  char *origin;             /* "<id>.origin" once written */
  char *manifest;           /* "<id>.manifest" once written */
  char *etc_state;          /* "<id>.etc-state" once written */
  char *kernel_dir;         /* the boot kernel directory if this stage created it */
  gboolean pending_written; /* this stage wrote the staged-pending marker */
  char *pending_before;     /* the marker it replaced (NULL: none) */
  gsize pending_before_len;
} StageUndo;

/* Removes what a failed stage created; best effort, as the stage's own
 * error is what the caller reports, and cleanup catches any leftovers. */
static void
stage_undo (Sysroot *self, StageUndo *undo)
{
  autofd os_dfd = -1;
  int parent = undo->deploy_dfd;
  if (undo->os_dir)
    {
      if (!fs_opendir_at (undo->deploy_dfd, undo->os_dir, &os_dfd, NULL))
        return;
      parent = os_dfd;
    }
  if (undo->origin)
    (void)fs_unlink_at_optional (parent, undo->origin, 0, NULL);
  if (undo->manifest)
    (void)fs_unlink_at_optional (parent, undo->manifest, 0, NULL);
  if (undo->etc_state)
    (void)fs_unlink_at_optional (parent, undo->etc_state, 0, NULL);
  if (undo->tree_name)
    (void)fs_rm_rf_at (parent, undo->tree_name, NULL);
  /* The first deployment of an os made its directory: an empty one left
   * would be a trace of a stage that failed (rmdir: only if empty). */
  if (undo->os_dir_created)
    {
      fd_closep (&os_dfd);
      (void)unlinkat (undo->deploy_dfd, undo->os_dir, AT_REMOVEDIR);
    }
  if (undo->kernel_dir)
    {
      autofd kdir = -1;
      if (fs_opendir_at (self->boot_dfd, BOOT_KERNEL_DIR, &kdir, NULL))
        (void)fs_rm_rf_at (kdir, undo->kernel_dir, NULL);
    }
  /* The marker of a deployment staged before this one goes back: that
   * staged record is still the live one. */
  if (undo->pending_written && undo->pending_before != NULL)
    (void)fs_write_file_atomic_at (self->state_dfd, PENDING_MARKER_FILE, undo->pending_before,
                                   undo->pending_before_len, 0644, FS_WRITE_SYNC, NULL);
  else if (undo->pending_written)
    (void)sysroot_remove_pending (self, NULL);
}

/* A marker that says an earlier boot's staging was lost is what the
 * boot-time check (stagehand-boot-complete.service) reports. A stage that
 * runs before that check, early at boot, would replace the marker: it runs
 * the check's own take (sysroot_take_lost_staging) and says what it found,
 * with the same MESSAGE_ID, as a warning. Best effort: nothing here can
 * fail the stage. */
static void
take_over_lost_staging (Sysroot *self, const Origin *origin)
{
  g_autoptr (DeploymentRecord) lost = NULL;
  g_autoptr (GError) local_error = NULL;
  if (!sysroot_take_lost_staging (self, &lost, &local_error))
    {
      log_event (LOG_WARNING, NULL, "%s", local_error->message);
      return;
    }
  if (lost == NULL)
    return;
  g_autofree char *name = deployment_record_name (lost);
  g_autofree char *what = pending_marker_describe_lost (lost);
  LogFields f
      = { .message_id = MESSAGE_ID_STAGED_NEVER_FINALIZED, .os = lost->os, .deployment = name };
  log_event (LOG_WARNING, &f,
             "%s; staging %s/%s replaces its staged-pending marker, so the boot-time check will "
             "not report it",
             what, origin->os, origin->id);
}

/* The staged-pending marker (pending.h), durably, before the staged record:
 * killed in between, the marker names what was about to be staged, and a
 * finalize of the record still there removes it. */
static gboolean
write_pending_marker (Sysroot *self, const Origin *origin, gint64 staged_usec, StageUndo *undo,
                      GError **error)
{
  take_over_lost_staging (self, origin);
  if (!fs_read_file_at_optional (self->state_dfd, PENDING_MARKER_FILE, FS_READ_MAX_SMALL,
                                 &undo->pending_before, &undo->pending_before_len, error))
    return FALSE;
  DeploymentRecord marker = { .os = origin->os, .id = origin->id, .staged_time = staged_usec };
  gsize len;
  g_autofree char *data = deployment_record_to_data (&pending_marker_format, &marker, &len);
  if (!fs_write_file_atomic_at (self->state_dfd, PENDING_MARKER_FILE, data, len, 0644,
                                FS_WRITE_SYNC, error))
    return FALSE;
  undo->pending_written = TRUE;
  return TRUE;
}

static gboolean
write_staged_record (Sysroot *self, const Origin *origin, gint64 staged_usec, GError **error)
{
  autofd run_dfd = -1;
  if (!sysroot_open_run_dir (self, TRUE, &run_dfd, error))
    return FALSE;
  DeploymentRecord record
      = { .os = origin->os, .id = origin->id, .staged_time = staged_usec / G_USEC_PER_SEC };
  gsize len;
  g_autofree char *data = deployment_record_to_data (&staged_record_format, &record, &len);
  return fs_write_file_atomic_at (run_dfd, STAGED_RECORD_FILE, data, len, 0644, FS_WRITE_SYNC,
                                  error);
}

/* The deployment a new one shares files with (see choose_reference()). */
typedef struct
{
  const Deployment *deployment;
  char *name; /* "<os>/<id>" */
  int tree_dfd;
  Manifest *manifest;
} Reference;

static void
reference_clear (Reference *ref)
{
  g_clear_pointer (&ref->name, g_free);
  g_clear_pointer (&ref->manifest, manifest_free);
  if (ref->tree_dfd >= 0)
    (void)close (ref->tree_dfd); /* read-only directory fd: nothing to report */
  ref->tree_dfd = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Reference, reference_clear)

/* The file @path below @dfd, resolved without following any symlink and
 * without leaving @dfd; FALSE if that fails. */
static gboolean
stat_beneath (int dfd, const char *path, struct stat *ret_st)
{
  struct open_how how = {
    .flags = O_PATH | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  autofd fd = syscall (SYS_openat2, dfd, path, &how, sizeof how);
  return fd >= 0 && fstat (fd, ret_st) == 0;
}

static gboolean
same_file (int dfd_a, const char *path_a, int dfd_b, const char *path_b)
{
  struct stat a, b;
  return path_a != NULL && path_b != NULL && stat_beneath (dfd_a, path_a, &a)
         && stat_beneath (dfd_b, path_b, &b) && S_ISREG (a.st_mode) && a.st_dev == b.st_dev
         && a.st_ino == b.st_ino;
}

/* The bootcsum of the new tree. When deduplication linked its kernel and
 * initramfs from the reference, they are the reference's inodes, whose
 * content never changes (deployments are immutable), so the reference's
 * bootcsum is theirs too: no need to run SHA-256 over them again (GLib's
 * does 90-280 MB/s on our VM; a Debian kernel + initramfs are 40-70 MB). */
static gboolean
compute_bootcsum (int tree_dfd, const KernelInfo *kernel, const Reference *ref, char **ret_bootcsum,
                  GError **error)
{
  const Origin *ro = ref->deployment != NULL ? ref->deployment->origin : NULL;
  if (ro != NULL && bootcsum_is_valid (ro->bootcsum)
      && same_file (tree_dfd, kernel->kernel_path, ref->tree_dfd, ro->kernel_path)
      && (kernel->initramfs_path == NULL
              ? ro->initramfs_path == NULL
              : same_file (tree_dfd, kernel->initramfs_path, ref->tree_dfd, ro->initramfs_path)))
    {
      *ret_bootcsum = g_strdup (ro->bootcsum);
      return TRUE;
    }
  return kernel_checksum (tree_dfd, kernel, ret_bootcsum, error);
}

static void
stage_phase (const StageOptions *opts, const StagePhaseInfo *info)
{
  if (opts->phase != NULL)
    opts->phase (info, opts->progress_data);
}

/* The kernel phase, with the sizes of the files it copies from @tree_dfd;
 * -1: the boot directory has them already, nothing is copied (the phase is
 * still reported, so an updater always sees the same phases). */
static void
stage_phase_kernel (const StageOptions *opts, int tree_dfd, const Origin *origin)
{
  if (opts->phase == NULL)
    return;
  StagePhaseInfo info = { STAGE_PHASE_KERNEL, 0, 0 };
  const char *files[] = { origin->kernel_path, origin->initramfs_path };
  for (guint i = 0; tree_dfd >= 0 && i < G_N_ELEMENTS (files); i++)
    {
      struct stat st;
      if (files[i] == NULL)
        continue;
      /* Only for the report: boot_kernel_install() says what is wrong. */
      if (fstatat (tree_dfd, files[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          info.total_bytes = -1;
          break;
        }
      info.total_files++;
      info.total_bytes += st.st_size;
    }
  stage_phase (opts, &info);
}

/* The writeback of the imported tree, waited for by a thread of its own
 * while the stage goes on: the bootcsum, the kernel copy, the /etc merge
 * and the manifest take 60-120 ms on a first deployment, and the disk
 * works meanwhile, so the stage's own syncfs (the one that counts, and
 * that reports errors) finds little left to write. */
typedef struct
{
  GThread *thread;
  int fd;
} EarlySync;

static gpointer
early_sync_run (gpointer data)
{
  EarlySync *s = data;
  (void)syncfs (s->fd); /* a head start only: errors are the stage's own syncfs' to report */
  return NULL;
}

static void
early_sync_start (EarlySync *s, int sysroot_dfd)
{
  s->thread = NULL;
  s->fd = -1;
  if (import_on_one_thread ())
    return;
  /* An open file of its own: syncfs() reports a writeback error once per
   * open file, so this one cannot take it from the stage's syncfs on
   * sysroot_dfd. */
  s->fd = openat (sysroot_dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->fd >= 0)
    s->thread = g_thread_new ("early-syncfs", early_sync_run, s);
}

static void
early_sync_finish (EarlySync *s)
{
  if (s->thread != NULL)
    g_thread_join (s->thread);
  s->thread = NULL;
  if (s->fd >= 0)
    (void)close (s->fd); /* read-only directory fd: nothing to report */
  s->fd = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (EarlySync, early_sync_finish)

static gboolean
stage_imported (Sysroot *self, const char *image, const StageOptions *opts, Manifest *manifest,
                const Reference *ref, StageUndo *undo, char **ret_deployment, GError **error)
{
  g_auto (EarlySync) early_sync = { NULL, -1 };
  early_sync_start (&early_sync, self->sysroot_dfd);

  autofd tree_dfd = -1;
  if (!fs_opendir_at (undo->deploy_dfd, undo->tree_name, &tree_dfd, error))
    return FALSE;

  g_autoptr (OsRelease) osr = NULL;
  g_autoptr (KernelInfo) kernel = NULL;
  g_autoptr (Origin) origin = g_new0 (Origin, 1);
  if (!os_release_load (tree_dfd, &osr, error) || !kernel_find (tree_dfd, &kernel, error)
      || !compute_bootcsum (tree_dfd, kernel, ref, &origin->bootcsum, error))
    return FALSE;

  origin->os = g_strdup (opts->os ? opts->os : osr->id);
  if (!next_deployment_id (undo->deploy_dfd, &origin->id, error))
    return FALSE;
  /* Shown to people, kept in the UTF-8 origin file: a path that is not
   * UTF-8 is shown with replacement characters rather than wedge the origin. */
  g_autofree char *image_path = g_canonicalize_filename (image, NULL);
  origin->image = g_utf8_make_valid (image_path, -1);
  origin->title = g_strdup (osr->pretty_name);
  origin->version = g_strdup (osr->version_id ? osr->version_id : osr->version);
  origin->kernel_version = g_strdup (kernel->version);
  origin->kernel_path = g_strdup (kernel->kernel_path);
  origin->initramfs_path = g_strdup (kernel->initramfs_path);
  if (!compute_kargs (self, opts->kargs, &origin->kargs, error))
    return FALSE;
  origin->created = g_get_real_time () / G_USEC_PER_SEC;

  /* The tree gets its final name; from here on undo works below <os>/. */
  autofd os_dfd = -1;
  if (mkdirat (undo->deploy_dfd, origin->os, 0755) == 0)
    undo->os_dir_created = TRUE;
  else if (errno != EEXIST)
    return throw_errno (error, "creating %s", origin->os);
  if (!fs_opendir_at (undo->deploy_dfd, origin->os, &os_dfd, error))
    {
      if (undo->os_dir_created)
        (void)unlinkat (undo->deploy_dfd, origin->os, AT_REMOVEDIR); /* ours, empty */
      return FALSE;
    }
  if (renameat (undo->deploy_dfd, undo->tree_name, os_dfd, origin->id) < 0)
    {
      int errsv = errno;
      if (undo->os_dir_created)
        (void)unlinkat (undo->deploy_dfd, origin->os, AT_REMOVEDIR); /* ours, empty */
      errno = errsv;
      return throw_errno (error, "moving the imported tree to %s/%s", origin->os, origin->id);
    }
  g_free (undo->tree_name);
  undo->tree_name = g_strdup (origin->id);
  undo->os_dir = g_strdup (origin->os);

  /* Same bootcsum: nothing to copy, unless a file of that directory has
   * gone since. Only a directory this stage created is undone. The
   * progress report counts the copy only where the directory is new. */
  g_autofree char *kernel_dir = origin_boot_dir_name (origin);
  struct stat kst;
  gboolean kernel_dir_exists = fstatat (self->boot_dfd, kernel_dir, &kst, AT_SYMLINK_NOFOLLOW) == 0;
  stage_phase_kernel (opts, kernel_dir_exists ? -1 : tree_dfd, origin);
  BootKernelAction kernel_action;
  if (!boot_kernel_install (self->boot_dfd, tree_dfd, origin, &kernel_action, error))
    return FALSE;
  if (kernel_action == BOOT_KERNEL_INSTALLED)
    undo->kernel_dir = g_steal_pointer (&kernel_dir);

  /* The running /etc goes into the new one now, not at shutdown: the
   * finalize only adds what changes until then. The new image's pristine
   * /etc goes into the manifest first. */
  if (!sysroot_etc_merge_at_stage (self, os_dfd, origin->id, tree_dfd, manifest, &undo->etc_state,
                                   error))
    return FALSE;

  /* The manifest lets the next stage share this tree's files. Before the
   * sync, which makes it durable with the tree; before the origin, so a
   * deployment never exists without it. */
  gsize manifest_len;
  g_autofree char *manifest_data = manifest_to_file_data (manifest, &manifest_len);
  g_autofree char *manifest_name = g_strdup_printf ("%s.manifest", origin->id);
  if (manifest_data == NULL)
    log_event (LOG_WARNING, NULL,
               "%s/%s has too many files for a manifest: the next stage shares none of them",
               origin->os, origin->id);
  else if (!fs_write_file_atomic_at (os_dfd, manifest_name, manifest_data, manifest_len, 0644,
                                     FS_WRITE_NONE, error))
    return prefix_error (error, "writing the manifest: ");
  else
    undo->manifest = g_steal_pointer (&manifest_name);

  /* One syncfs for the whole tree instead of an fsync per file (the early
   * one and the flusher have done most of its work). */
  stage_phase (opts, &(StagePhaseInfo){ STAGE_PHASE_SYNC, -1, -1 });
  early_sync_finish (&early_sync);
  if (!fs_syncfs (self->sysroot_dfd, "the sysroot filesystem", error))
    return FALSE;

  gsize len;
  g_autofree char *data = origin_to_data (origin, &len);
  g_autofree char *origin_name = g_strdup_printf ("%s.origin", origin->id);
  /* The origin is written last: only now is the deployment complete. */
  if (!fs_write_file_atomic_at (os_dfd, origin_name, data, len, 0644, FS_WRITE_SYNC, error))
    return FALSE;
  undo->origin = g_steal_pointer (&origin_name);

  gint64 staged_usec = g_get_real_time ();
  if (opts->mark_pending && !write_pending_marker (self, origin, staged_usec, undo, error))
    return prefix_error (error, "writing the staged-pending marker: ");
  if (!write_staged_record (self, origin, staged_usec, error))
    return prefix_error (error, "writing the staged record: ");

  *ret_deployment = g_strdup_printf ("%s/%s", origin->os, origin->id);
  return TRUE;
}

static gint
compare_newest_first (gconstpointer a, gconstpointer b)
{
  const Deployment *x = *(Deployment *const *)a, *y = *(Deployment *const *)b;
  guint64 ix = g_ascii_strtoull (x->id, NULL, 10), iy = g_ascii_strtoull (y->id, NULL, 10);
  return ix > iy ? -1 : ix < iy;
}

/* The deployment a new one shares unchanged files with: the default (what
 * runs, or will after a reboot), else the staged, else the newest — the
 * first of these that has a manifest (deployments staged before manifests
 * existed are never read again to make one). Any os: the new image's is
 * only known after the import, and a different os simply shares little.
 * Returns FALSE, leaving @ret_ref untouched, when there is none. */
static gboolean
choose_reference (Sysroot *self, int deploy_dfd, Reference *ret_ref)
{
  g_autoptr (GPtrArray) candidates = g_ptr_array_new ();
  if (self->default_deployment != NULL)
    g_ptr_array_add (candidates, self->default_deployment);
  if (self->staged != NULL)
    g_ptr_array_add (candidates, self->staged);
  /* Borrowed pointers (g_ptr_array_copy() would take the free function too). */
  g_autoptr (GPtrArray) newest = g_ptr_array_new ();
  for (guint i = 0; i < self->deployments->len; i++)
    g_ptr_array_add (newest, self->deployments->pdata[i]);
  g_ptr_array_sort (newest, compare_newest_first);
  for (guint i = 0; i < newest->len; i++)
    g_ptr_array_add (candidates, newest->pdata[i]);

  for (guint i = 0; i < candidates->len; i++)
    {
      const Deployment *d = candidates->pdata[i];
      g_autoptr (GError) local_error = NULL;
      g_autofree char *name = deployment_name (d);
      autofd os_dfd = -1;
      autofd tree_dfd = -1;
      g_autoptr (Manifest) manifest = NULL;
      g_autofree char *manifest_name = g_strdup_printf ("%s.manifest", d->id);
      /* Cleanup may just have removed it (the newest need not be kept). */
      if (!fs_opendir_at_optional (deploy_dfd, d->os, &os_dfd, &local_error) || os_dfd < 0
          || !fs_opendir_at_optional (os_dfd, d->id, &tree_dfd, &local_error) || tree_dfd < 0
          || !manifest_load_at (os_dfd, manifest_name, &manifest, &local_error))
        {
          if (local_error != NULL)
            log_event (LOG_WARNING, NULL, "not sharing files with %s: %s", name,
                       local_error->message);
          continue;
        }
      if (manifest == NULL)
        continue;
      ret_ref->deployment = d;
      ret_ref->name = g_steal_pointer (&name);
      ret_ref->tree_dfd = fd_steal (&tree_dfd);
      ret_ref->manifest = g_steal_pointer (&manifest);
      return TRUE;
    }
  return FALSE;
}

typedef struct
{
  const StageOptions *opts;
  ImportProgress last;
} StageProgress;

static void
stage_progress (const ImportProgress *progress, gpointer user_data)
{
  StageProgress *p = user_data;
  p->last = *progress;
  if (p->opts->progress != NULL)
    p->opts->progress (progress, p->opts->progress_data);
}

gboolean
sysroot_stage (Sysroot *self, const char *image, const StageOptions *opts, char **ret_deployment,
               GError **error)
{
  g_assert (self->loaded && self->lock != NULL);
  if (opts->os != NULL && !os_name_is_valid (opts->os))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "invalid --os \"%s\": use lower-case letters, digits, '.', '_' and '-'",
                        opts->os);
  for (char *const *k = opts->kargs; k && *k; k++)
    if (!karg_validate (*k, error))
      return prefix_error (error, "invalid --karg: ");

  gint64 started = g_get_monotonic_time ();
  /* Make room first: deployments nothing refers to any more go now, at
   * stage time, rather than piling up (and never at shutdown). */
  CleanupStats stats;
  g_autoptr (GError) cleanup_error = NULL;
  if (!sysroot_cleanup (self, &stats, &cleanup_error))
    log_event (LOG_WARNING, NULL, "cleanup before staging: %s", cleanup_error->message);

  if (!fs_ensure_dir_at (self->state_dfd, DEPLOY_DIR, 0755, error))
    return FALSE;
  autofd deploy_dfd = -1;
  if (!fs_opendir_at (self->state_dfd, DEPLOY_DIR, &deploy_dfd, error))
    return FALSE;

  g_auto (Reference) ref = { .tree_dfd = -1 };
  gboolean shares = choose_reference (self, deploy_dfd, &ref);

  StageUndo undo = { .deploy_dfd = deploy_dfd, .tree_name = fs_temp_name ("import") };
  StageProgress progress = { .opts = opts };
  ImportOptions import_options = IMPORT_OPTIONS_INIT;
  stage_phase (opts, &(StagePhaseInfo){ STAGE_PHASE_IMPORT, -1, -1 });
  import_options.progress = stage_progress;
  import_options.progress_data = &progress;
  import_options.reference_dfd = ref.tree_dfd;
  import_options.reference_manifest = ref.manifest;
  g_autofree char *deployment = NULL;
  g_autoptr (Manifest) manifest = NULL;
  gboolean ok = image_import_with_manifest (image, deploy_dfd, undo.tree_name, &import_options,
                                            &manifest, error)
                && stage_imported (self, image, opts, manifest, &ref, &undo, &deployment, error);
  if (!ok)
    stage_undo (self, &undo);
  g_free (undo.os_dir);
  g_free (undo.tree_name);
  g_free (undo.origin);
  g_free (undo.manifest);
  g_free (undo.etc_state);
  g_free (undo.kernel_dir);
  g_free (undo.pending_before);
  if (!ok)
    return prefix_error (error, "staging %s: ", image);

  g_auto (GStrv) parts = g_strsplit (deployment, "/", 2);
  LogFields f = { .message_id = MESSAGE_ID_STAGE_DONE,
                  .os = parts[0],
                  .deployment = deployment,
                  .step = "stage",
                  .duration_usec = g_get_monotonic_time () - started };
  g_autofree char *skipped
      = progress.last.devices_skipped == 0
            ? g_strdup ("")
            : g_strdup_printf ("; %" G_GUINT64_FORMAT " device nodes under /dev skipped",
                               progress.last.devices_skipped);
  if (shares)
    log_event (LOG_INFO, &f,
               "staged %s from %s; %" G_GUINT64_FORMAT " files (%" G_GUINT64_FORMAT
               " bytes) shared with %s%s",
               deployment, image, progress.last.linked_files, progress.last.linked_bytes, ref.name,
               skipped);
  else
    log_event (LOG_INFO, &f, "staged %s from %s%s", deployment, image, skipped);
  *ret_deployment = g_steal_pointer (&deployment);
  return TRUE;
}

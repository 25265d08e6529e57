#include "config.h"

#include "sysroot.h"
#include "booted.h"
#include "deployment-karg.h"
#include "errors.h"
#include "fsutil.h"
#include "karg.h"
#include "ops.h"
#include "osrelease.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
deployment_free (Deployment *d)
{
  if (d == NULL)
    return;
  g_free (d->os);
  g_free (d->id);
  origin_free (d->origin);
  g_free (d);
}

static void
sysroot_clear_state (Sysroot *self)
{
  g_clear_pointer (&self->deployments, g_ptr_array_unref);
  g_clear_pointer (&self->staged_record, deployment_record_free);
  g_clear_pointer (&self->boot_config, boot_config_free);
  g_clear_pointer (&self->last_verdict, verdict_free);
  g_clear_pointer (&self->pending, deployment_record_free);
  g_clear_pointer (&self->booted_karg, g_free);
  self->booted = self->staged = self->default_deployment = NULL;
  self->loaded = FALSE;
}

void
sysroot_free (Sysroot *self)
{
  if (self == NULL)
    return;
  sysroot_clear_state (self);
  sysroot_lock_release (self->lock);
  config_free (self->config);
  fd_closep (&self->sysroot_dfd);
  fd_closep (&self->boot_dfd);
  fd_closep (&self->state_dfd);
  g_free (self->path);
  g_free (self->boot_path);
  g_free (self->run_path);
  g_free (self);
}

static gboolean
same_inode (int fd, const char *path)
{
  struct stat a, b;
  return fstat (fd, &a) == 0 && stat (path, &b) == 0 && a.st_dev == b.st_dev
         && a.st_ino == b.st_ino;
}

static gboolean
load_config (Sysroot *self, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (self->state_dfd >= 0
      && !fs_read_file_at_optional (self->state_dfd, CONFIG_FILE, FS_READ_MAX_SMALL, &data, &len,
                                    error))
    return FALSE;
  if (data == NULL)
    {
      self->config = config_new_default ();
      return TRUE;
    }
  g_autofree char *what = g_build_filename (self->path, STATE_DIR, CONFIG_FILE, NULL);
  return config_parse (data, len, what, &self->config, error);
}

static gboolean
open_sysroot (const char *path, const char *boot_path, gboolean open_boot, Sysroot **ret_sysroot,
              GError **error)
{
  g_autoptr (Sysroot) self = g_new0 (Sysroot, 1);
  self->sysroot_dfd = self->boot_dfd = self->state_dfd = -1;

  /* Booted into a deployment (the root setup's marker in /run), the
   * physical root is at /sysroot: that is the default sysroot, and the
   * boot directory is the running system's /boot (the automount), not
   * /sysroot/boot. A marker that does not parse fails only the commands
   * that would have used it. */
  const char *host_root = booted_host_root ();
  g_autoptr (BootedMarker) booted = NULL;
  g_autoptr (GError) booted_error = NULL;
  if (!booted_marker_load (&booted, &booted_error) && path == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&booted_error));
      return FALSE;
    }
  g_autofree char *booted_sysroot
      = booted ? g_build_filename (host_root, booted->sysroot, NULL) : NULL;
  if (path != NULL)
    self->path = g_strdup (path);
  else
    self->path = g_strdup (booted_sysroot ? booted_sysroot : host_root);
  if (boot_path != NULL)
    self->boot_path = g_strdup (boot_path);
  else if (path == NULL && booted_sysroot != NULL)
    self->boot_path = g_build_filename (host_root, "boot", NULL);
  else
    self->boot_path = g_build_filename (self->path, "boot", NULL);

  self->sysroot_dfd = open (self->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->sysroot_dfd < 0)
    return throw_errno (error, "opening sysroot %s", self->path);
  /* The running system's sysroot: its runtime directory is the running
   * system's /run/stagehand and its kernel command line /proc/cmdline. */
  self->is_host = same_inode (self->sysroot_dfd, host_root)
                  || (booted_sysroot != NULL && same_inode (self->sysroot_dfd, booted_sysroot));
  self->run_path = self->is_host ? g_build_filename (host_root, "run", "stagehand", NULL)
                                 : g_build_filename (self->path, "run", "stagehand", NULL);

  self->without_boot = !open_boot;
  if (open_boot)
    {
      self->boot_dfd = open (self->boot_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (self->boot_dfd < 0 && errno != ENOENT)
        return throw_errno (error, "opening boot directory %s", self->boot_path);
    }

  if (!fs_opendir_at_optional (self->sysroot_dfd, STATE_DIR, &self->state_dfd, error))
    return prefix_error (error, "opening sysroot %s: ", self->path);
  if (!load_config (self, error))
    return FALSE;

  *ret_sysroot = g_steal_pointer (&self);
  return TRUE;
}

gboolean
sysroot_open (const char *path, const char *boot_path, Sysroot **ret_sysroot, GError **error)
{
  return open_sysroot (path, boot_path, TRUE, ret_sysroot, error);
}

gboolean
sysroot_open_without_boot (const char *path, Sysroot **ret_sysroot, GError **error)
{
  return open_sysroot (path, NULL, FALSE, ret_sysroot, error);
}

gboolean
sysroot_open_boot (Sysroot *self, GError **error)
{
  if (!self->without_boot)
    return TRUE;
  self->boot_dfd = open (self->boot_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->boot_dfd < 0 && errno != ENOENT)
    return throw_errno (error, "opening boot directory %s", self->boot_path);
  self->without_boot = FALSE;
  return TRUE;
}

gboolean
sysroot_require_initialized (Sysroot *self, GError **error)
{
  if (self->state_dfd < 0)
    return throw_error (error, STAGEHAND_ERROR_NOT_INITIALIZED,
                        "sysroot %s is not initialised (no %s directory); run 'stagehand "
                        "--sysroot=%s init' first",
                        self->path, STATE_DIR, self->path);
  if (self->boot_dfd < 0 && !self->without_boot)
    return throw_error (error, STAGEHAND_ERROR_NOT_INITIALIZED,
                        "boot directory %s does not exist; run 'stagehand init' or pass --boot",
                        self->boot_path);
  return TRUE;
}

gboolean
sysroot_lock (Sysroot *self, const char *operation, guint timeout_sec, LockWaitFunc wait_func,
              gpointer wait_data, GError **error)
{
  g_assert (self->lock == NULL);
  if (!sysroot_require_initialized (self, error))
    return FALSE;
  return sysroot_lock_acquire (self->state_dfd, operation, timeout_sec, wait_func, wait_data,
                               &self->lock, error);
}

gboolean
sysroot_open_run_dir (Sysroot *self, gboolean create, int *ret_fd, GError **error)
{
  if (create && g_mkdir_with_parents (self->run_path, 0755) < 0)
    return throw_errno (error, "creating %s", self->run_path);
  int fd = open (self->run_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && !(errno == ENOENT && !create))
    return throw_errno (error, "opening %s", self->run_path);
  *ret_fd = fd;
  return TRUE;
}

char *
deployment_name (const Deployment *d)
{
  return g_strdup_printf ("%s/%s", d->os, d->id);
}

char *
deployment_path (const char *os, const char *id)
{
  return g_strdup_printf (STATE_DIR "/" DEPLOY_DIR "/%s/%s", os, id);
}

gboolean
sysroot_open_deployment (Sysroot *self, const Deployment *d, int *ret_fd, GError **error)
{
  g_autofree char *path = deployment_path (d->os, d->id);
  if (!fs_opendir_at (self->sysroot_dfd, path, ret_fd, error))
    return prefix_error (error, "opening deployment %s/%s: ", d->os, d->id);
  return TRUE;
}

Deployment *
sysroot_find_deployment (Sysroot *self, const char *os, const char *id)
{
  for (guint i = 0; self->deployments && i < self->deployments->len; i++)
    {
      Deployment *d = self->deployments->pdata[i];
      if (strcmp (d->os, os) == 0 && strcmp (d->id, id) == 0)
        return d;
    }
  return NULL;
}

/* A deployment exists when both <id>/ and <id>.origin do: the origin is
 * written last, so a tree without one is an interrupted stage that cleanup
 * removes. */
static gboolean
load_os_deployments (Sysroot *self, int deploy_dfd, const char *os, GError **error)
{
  autofd os_dfd = -1;
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_opendir_at (deploy_dfd, os, &os_dfd, error) || !fs_list_dir (os_dfd, os, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (!g_str_has_suffix (name, ".origin"))
        continue;
      g_autofree char *id = g_strndup (name, strlen (name) - strlen (".origin"));
      struct stat st;
      if (!deployment_id_is_valid (id) || fstatat (os_dfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0
          || !S_ISDIR (st.st_mode))
        continue;
      g_autofree char *data = NULL;
      gsize len;
      g_autofree char *what
          = g_strdup_printf ("%s/" STATE_DIR "/" DEPLOY_DIR "/%s/%s", self->path, os, name);
      g_autoptr (GError) read_error = NULL;
      if (!fs_read_file_at (os_dfd, name, FS_READ_MAX_SMALL, &data, &len, &read_error))
        {
          /* status reads without the lock: a concurrent cleanup may
           * have removed this deployment since the listing. */
          if (g_error_matches (read_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            continue;
          g_propagate_prefixed_error (error, g_steal_pointer (&read_error), "reading %s: ", what);
          return FALSE;
        }
      Deployment *d = g_new0 (Deployment, 1);
      d->os = g_strdup (os);
      d->id = g_strdup (id);
      d->entry_index = -1;
      g_ptr_array_add (self->deployments, d);
      if (!origin_parse (data, len, what, &d->origin, error))
        return FALSE;
      if (strcmp (d->origin->os, os) != 0 || strcmp (d->origin->id, id) != 0)
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: it names %s/%s", what,
                            d->origin->os, d->origin->id);
    }
  return TRUE;
}

static gboolean
load_deployments (Sysroot *self, GError **error)
{
  self->deployments = g_ptr_array_new_with_free_func ((GDestroyNotify)deployment_free);
  autofd deploy_dfd = -1;
  if (!fs_opendir_at_optional (self->state_dfd, DEPLOY_DIR, &deploy_dfd, error))
    return FALSE;
  if (deploy_dfd < 0)
    return TRUE;
  g_autoptr (GPtrArray) oses = NULL;
  if (!fs_list_dir (deploy_dfd, DEPLOY_DIR, &oses, error))
    return FALSE;
  for (guint i = 0; i < oses->len; i++)
    {
      const char *os = oses->pdata[i];
      if (os_name_is_valid (os) && !load_os_deployments (self, deploy_dfd, os, error))
        return FALSE;
    }
  return TRUE;
}

char *
sysroot_read_cmdline (Sysroot *self)
{
  const char *debug = g_getenv ("STAGEHAND_DEBUG_CMDLINE");
  if (debug != NULL)
    return g_strdup (debug);
  if (!self->is_host)
    return NULL;
  char *cmdline = NULL;
  if (!g_file_get_contents ("/proc/cmdline", &cmdline, NULL, NULL))
    return NULL;
  return cmdline;
}

/* Parses "/stagehand/deploy/<os>/<id>" into its parts, by the rules the
 * initramfs root setup applies (deployment-karg.h). */
static gboolean
parse_deployment_karg (const char *value, char **ret_os, char **ret_id)
{
  const char *os, *id;
  size_t os_len;
  if (value == NULL || deployment_karg_check (value, &os, &os_len, &id) != NULL)
    return FALSE;
  *ret_os = g_strndup (os, os_len);
  *ret_id = g_strdup (id);
  return TRUE;
}

/* The (last) stagehand= value on the kernel command line, or NULL. */
static char *
read_booted_karg (Sysroot *self)
{
  g_autofree char *cmdline = sysroot_read_cmdline (self);
  char *value = deployment_karg_find (cmdline);
  char *copy = g_strdup (value);
  free (value);
  return copy;
}

char *
deployment_name_from_karg (const char *value)
{
  g_autofree char *os = NULL, *id = NULL;
  if (!parse_deployment_karg (value, &os, &id))
    return NULL;
  return g_strdup_printf ("%s/%s", os, id);
}

char *
sysroot_booted_name (Sysroot *self)
{
  g_autofree char *value = read_booted_karg (self);
  return deployment_name_from_karg (value);
}

gboolean
sysroot_read_staged_record (Sysroot *self, DeploymentRecord **ret_record, GError **error)
{
  *ret_record = NULL;
  autofd run_dfd = -1;
  if (!sysroot_open_run_dir (self, FALSE, &run_dfd, error))
    return FALSE;
  if (run_dfd < 0)
    return TRUE;
  g_autofree char *data = NULL;
  gsize len;
  g_autofree char *what = g_build_filename (self->run_path, STAGED_RECORD_FILE, NULL);
  if (!fs_read_file_at_optional (run_dfd, STAGED_RECORD_FILE, FS_READ_MAX_SMALL, &data, &len,
                                 error))
    return prefix_error (error, "reading %s: ", what);
  if (data == NULL)
    return TRUE;
  return deployment_record_parse (&staged_record_format, data, len, what, ret_record, error);
}

static gboolean
load_staged_record (Sysroot *self, GError **error)
{
  if (!sysroot_read_staged_record (self, &self->staged_record, error))
    return FALSE;
  if (self->staged_record == NULL)
    return TRUE;
  g_autofree char *what = g_build_filename (self->run_path, STAGED_RECORD_FILE, NULL);
  self->staged = sysroot_find_deployment (self, self->staged_record->os, self->staged_record->id);
  if (self->staged == NULL)
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "staged record %s names %s/%s, which is not a complete deployment "
                        "(remove it with 'stagehand unstage')",
                        what, self->staged_record->os, self->staged_record->id);
  self->staged->is_staged = TRUE;
  return TRUE;
}

gboolean
sysroot_load_verdict (Sysroot *self, GError **error)
{
  g_clear_pointer (&self->last_verdict, verdict_free);
  g_autofree char *data = NULL;
  gsize len;
  if (!fs_read_file_at_optional (self->state_dfd, VERDICT_FILE, FS_READ_MAX_SMALL, &data, &len,
                                 error))
    return FALSE;
  if (data == NULL)
    return TRUE;
  g_autofree char *what = g_build_filename (self->path, STATE_DIR, VERDICT_FILE, NULL);
  return verdict_parse (data, len, what, &self->last_verdict, error);
}

gboolean
sysroot_load_pending (Sysroot *self, GError **error)
{
  g_clear_pointer (&self->pending, deployment_record_free);
  g_autofree char *data = NULL;
  gsize len;
  g_autofree char *what = g_build_filename (self->path, STATE_DIR, PENDING_MARKER_FILE, NULL);
  if (!fs_read_file_at_optional (self->state_dfd, PENDING_MARKER_FILE, FS_READ_MAX_SMALL, &data,
                                 &len, error))
    return prefix_error (error, "reading %s: ", what);
  if (data == NULL)
    return TRUE;
  return deployment_record_parse (&pending_marker_format, data, len, what, &self->pending, error);
}

gboolean
sysroot_remove_pending (Sysroot *self, GError **error)
{
  g_autofree char *what = g_build_filename (self->path, STATE_DIR, PENDING_MARKER_FILE, NULL);
  if (unlinkat (self->state_dfd, PENDING_MARKER_FILE, 0) < 0)
    {
      if (errno == ENOENT)
        return TRUE;
      return throw_errno (error, "removing %s", what);
    }
  /* Durably: a marker that came back after a power loss would report an
   * unstaged (or finalized) deployment as lost. */
  g_autofree char *state_path = g_build_filename (self->path, STATE_DIR, NULL);
  return fs_fsync_fd (self->state_dfd, state_path, error);
}

/* Opens the runtime directory (-1 when there is none) and says whether the
 * staged record is in it. */
static gboolean
find_staged_record (Sysroot *self, int *ret_run_dfd, gboolean *ret_exists, GError **error)
{
  autofd run_dfd = -1;
  gboolean exists = FALSE;
  if (!sysroot_open_run_dir (self, FALSE, &run_dfd, error))
    return FALSE;
  struct stat st;
  if (run_dfd >= 0 && !fs_stat_optional (run_dfd, STAGED_RECORD_FILE, &st, &exists, error))
    return prefix_error (error, "%s: ", self->run_path);
  *ret_run_dfd = fd_steal (&run_dfd);
  *ret_exists = exists;
  return TRUE;
}

gboolean
sysroot_has_staged_record (Sysroot *self, gboolean *ret_exists, GError **error)
{
  autofd run_dfd = -1;
  return find_staged_record (self, &run_dfd, ret_exists, error);
}

static int
compare_deployments (gconstpointer pa, gconstpointer pb)
{
  const Deployment *a = *(Deployment *const *)pa;
  const Deployment *b = *(Deployment *const *)pb;
  if (a->is_staged != b->is_staged)
    return a->is_staged ? -1 : 1;
  if ((a->entry_index < 0) != (b->entry_index < 0))
    return a->entry_index < 0 ? 1 : -1;
  if (a->entry_index != b->entry_index)
    return a->entry_index - b->entry_index;
  guint64 ia = g_ascii_strtoull (a->id, NULL, 10), ib = g_ascii_strtoull (b->id, NULL, 10);
  return ia == ib ? strcmp (a->os, b->os) : (ia > ib ? -1 : 1);
}

static gboolean
sysroot_load_once (Sysroot *self, GError **error)
{
  sysroot_clear_state (self);
  if (!sysroot_require_initialized (self, error))
    return FALSE;
  if (!load_deployments (self, error))
    return FALSE;
  if (!boot_config_load (self->boot_dfd, &self->boot_config, error))
    return FALSE;

  for (guint i = 0; i < self->boot_config->entries->len; i++)
    {
      BootEntry *e = self->boot_config->entries->pdata[i];
      if (!boot_entry_is_ours (e))
        continue;
      g_autofree char *value = boot_entry_get_deployment (e);
      g_autofree char *os = NULL, *id = NULL;
      Deployment *d = NULL;
      if (parse_deployment_karg (value, &os, &id))
        d = sysroot_find_deployment (self, os, id);
      if (d == NULL)
        g_ptr_array_add (self->boot_config->warnings,
                         g_strdup_printf ("%s/%s: " KARG_DEPLOYMENT_KEY
                                          "=%s is not a deployment; this entry cannot boot",
                                          self->boot_config->entries_path, e->filename, value));
      if (d != NULL && d->entry_index < 0)
        d->entry_index = i;
      if (i == 0 && d != NULL)
        {
          d->is_default = TRUE;
          self->default_deployment = d;
        }
    }

  self->booted_karg = read_booted_karg (self);
  g_autofree char *bos = NULL, *bid = NULL;
  if (parse_deployment_karg (self->booted_karg, &bos, &bid))
    self->booted = sysroot_find_deployment (self, bos, bid);
  if (self->booted)
    self->booted->is_booted = TRUE;

  if (!load_staged_record (self, error) || !sysroot_load_verdict (self, error))
    return FALSE;

  g_ptr_array_sort (self->deployments, compare_deployments);
  self->loaded = TRUE;
  return TRUE;
}

gboolean
sysroot_load (Sysroot *self, GError **error)
{
  /* Without the lock (status), the state can change under us: a stage can
   * write its staged record after we listed the deployments. A state that
   * does not hang together is read again a few times before it is called
   * corrupt; with the lock held the first answer is final. */
  guint attempts = self->lock != NULL ? 1 : 5;
  for (guint i = 1;; i++)
    {
      g_autoptr (GError) local_error = NULL;
      if (sysroot_load_once (self, &local_error))
        return TRUE;
      if (i >= attempts || !g_error_matches (local_error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      g_usleep (10000 * i);
    }
}

char *
sysroot_boot_id (void)
{
  char *id = NULL;
  if (g_file_get_contents ("/proc/sys/kernel/random/boot_id", &id, NULL, NULL))
    g_strstrip (id);
  return id;
}

/* Declared in ops.h; here because finalize needs it too and must not
 * pull in the staging code (and the importer) with it. */
gboolean
sysroot_unstage (Sysroot *self, gboolean *ret_was_staged, GError **error)
{
  g_assert (self->lock != NULL);
  autofd run_dfd = -1;
  gboolean exists;
  *ret_was_staged = FALSE;
  if (!find_staged_record (self, &run_dfd, &exists, error))
    return FALSE;
  /* Nothing staged in this boot: a marker there is an earlier boot's lost
   * staging, which the boot-time check still has to report. */
  if (!exists)
    return TRUE;
  /* The marker first: killed in between, the record is still there (the
   * unstage failed, and said so by dying) and nothing is lost that the
   * caller did not want dropped anyway; the other order would leave a
   * marker that reports an unstaged deployment as lost at the next boot.
   * A marker that cannot be removed does not keep the record, though: a
   * finalize that committed must not stay staged (the boot-time check
   * sees the marker's deployment booted and drops it); the error comes
   * after. */
  g_autoptr (GError) marker_error = NULL;
  (void)sysroot_remove_pending (self, &marker_error); /* reported below */
  if (unlinkat (run_dfd, STAGED_RECORD_FILE, 0) < 0 && errno != ENOENT)
    return throw_errno (error, "removing %s/%s", self->run_path, STAGED_RECORD_FILE);
  *ret_was_staged = TRUE;
  if (!fs_fsync_fd (run_dfd, self->run_path, error))
    return FALSE;
  if (marker_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&marker_error));
      return FALSE;
    }
  return TRUE;
}

#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

gboolean
sysroot_init (Sysroot *self, BootMode mode, guint lock_timeout, LockWaitFunc wait_func,
              gpointer wait_data, GError **error)
{
  if (self->boot_dfd < 0)
    {
      /* Only the default <sysroot>/boot is created; an explicit --boot must
       * exist (it is usually a mount point). */
      g_autofree char *default_boot = g_build_filename (self->path, "boot", NULL);
      if (g_strcmp0 (default_boot, self->boot_path) != 0)
        return throw_error (error, STAGEHAND_ERROR_INVALID, "boot directory %s does not exist",
                            self->boot_path);
      if (!fs_ensure_dir_at (self->sysroot_dfd, "boot", 0755, error)
          || !fs_opendir_at (self->sysroot_dfd, "boot", &self->boot_dfd, error))
        return prefix_error (error, "initialising %s: ", self->path);
    }

  /* 0755 and owned by us: the lock inside must not be takeable by others. */
  if (!fs_ensure_dir_at (self->sysroot_dfd, STATE_DIR, 0755, error))
    return prefix_error (error, "initialising %s: ", self->path);
  if (self->state_dfd < 0 && !fs_opendir_at (self->sysroot_dfd, STATE_DIR, &self->state_dfd, error))
    return prefix_error (error, "initialising %s: ", self->path);
  if (self->lock == NULL && !sysroot_lock (self, "init", lock_timeout, wait_func, wait_data, error))
    return FALSE;
  if (!fs_ensure_dir_at (self->state_dfd, DEPLOY_DIR, 0755, error))
    return prefix_error (error, "initialising %s: ", self->path);
  if (!boot_config_init (self->boot_dfd, mode, error))
    return prefix_error (error, "initialising boot directory %s: ", self->boot_path);
  if (!fs_syncfs (self->state_dfd, self->path, error))
    return FALSE;
  return TRUE;
}

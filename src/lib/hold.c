#include "config.h"

#include "hold.h"
#include "errors.h"
#include "journal.h"
#include "mount-query.h"

#include <errno.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

static char *
describe_one (const char *path)
{
  g_autoptr (MountState) state = NULL;
  g_autoptr (GError) local_error = NULL;
  if (!mount_query (NULL, path, &state, &local_error))
    return g_strdup_printf ("%s (%s)", path, local_error->message);
  g_autofree char *desc = mount_state_describe (state);
  return g_strdup_printf ("%s (%s)", path, desc);
}

char *
hold_describe_mounts (Sysroot *sysroot)
{
  g_autofree char *boot = describe_one (sysroot->boot_path);
  g_autofree char *root = describe_one (sysroot->path);
  return g_strdup_printf ("%s and %s", boot, root);
}

static void
notify (const char *state)
{
  /* Not under systemd (NOTIFY_SOCKET unset), this does nothing; a failure
   * to reach the manager shows up as the unit's start timeout. */
  (void)sd_notify (0, state);
}

gboolean
hold_until_shutdown (Sysroot **sysroot, int *ret_signal, GError **error)
{
  g_autofree char *held = hold_describe_mounts (*sysroot);
  LogFields f = { .message_id = MESSAGE_ID_HOLD, .step = "hold" };
  log_event (LOG_INFO, &f, "holding %s until shutdown", held);
  g_autofree char *status = g_strdup_printf ("READY=1\nSTATUS=Holding %s until shutdown", held);
  notify (status);

  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGHUP);
  for (;;)
    {
      int sig;
      int r = sigwait (&mask, &sig);
      if (r != 0)
        return throw_errno_value (error, r, "waiting for a signal");
      if (sig != SIGHUP)
        {
          *ret_signal = sig;
          notify ("STOPPING=1\nSTATUS=Finalizing");
          return TRUE;
        }

      g_autoptr (Sysroot) fresh = NULL;
      g_autoptr (GError) local_error = NULL;
      if (!sysroot_open ((*sysroot)->path, (*sysroot)->boot_path, &fresh, &local_error))
        {
          log_event (LOG_WARNING, &f,
                     "SIGHUP: re-opening the held directories failed, keeping the old ones: %s",
                     local_error->message);
          continue;
        }
      Sysroot *old = *sysroot;
      *sysroot = g_steal_pointer (&fresh);
      sysroot_free (old);
      g_free (held);
      held = hold_describe_mounts (*sysroot);
      log_event (LOG_NOTICE, &f, "SIGHUP: re-opened, holding %s", held);
      g_free (status);
      status = g_strdup_printf ("STATUS=Holding %s until shutdown", held);
      notify (status);
    }
}

#include "config.h"

#include "cli-progress.h"
#include "cli.h"
#include "ops.h"
#include "unit-control.h"
#include "verbs.h"

#include <stdio.h>

/* Why the finalize unit is not started, or NULL if it should be. */
static const char *
reason_not_to_start (const Sysroot *sysroot, gboolean no_start)
{
  if (no_start)
    return "--no-start was given";
  if (!sysroot->is_host)
    return "the sysroot is not the running system";
  if (!unit_control_available ())
    return "the system is not running systemd";
  return NULL;
}

/* Prints the error once and, with --progress-fd, ends the progress lines
 * with it; returns the exit status. */
static int
fail (CliProgressFd *progress, GError *error)
{
  int status = cli_fail (error);
  if (progress != NULL)
    cli_progress_fd_finish (progress, status, NULL, NULL, error->message);
  return status;
}

int
verb_stage (int argc, char **argv)
{
  /* The finalize runs in another process, later: if it never does, the
   * marker lets the next boot say so. */
  CliStageOptions opts = { .lock_timeout = -1, .mark_pending = TRUE };
  int progress_fd = -1;
  const GOptionEntry entries[] = {
    CLI_STAGE_OPTION_ENTRIES (opts),
    { "no-start", 0, 0, G_OPTION_ARG_NONE, &opts.no_start, "Do not start " STAGEHAND_FINALIZE_UNIT,
      NULL },
    { "progress-fd", 0, 0, G_OPTION_ARG_INT, &progress_fd,
      "Write progress to file descriptor FD as JSON lines", "FD" },
    { NULL },
  };
  if (!cli_parse_options ("stage", "IMAGE",
                          "Stage IMAGE (a directory or tar archive) to become the default "
                          "deployment when the system shuts down.",
                          entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc < 2)
    return cli_usage_error ("stage", "missing IMAGE");
  if (argc > 2)
    return cli_usage_error ("stage", "unexpected argument \"%s\"", argv[2]);
  int r = cli_check_stage_options ("stage", &opts);
  if (r != 0)
    return r;
  g_autoptr (CliProgressFd) progress = NULL;
  if (progress_fd != -1 && (r = cli_progress_fd_open ("stage", progress_fd, &progress)) != 0)
    return r;
  opts.progress_fd = progress;

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autofree char *deployment = NULL;
  guint64 devices_skipped = 0;
  if (!cli_stage ("stage", argv[1], &opts, &sysroot, &deployment, &devices_skipped, &error))
    return fail (progress, error);
  /* The finalizer takes the lock itself at shutdown. */
  sysroot_lock_release (g_steal_pointer (&sysroot->lock));
  const char *reason = reason_not_to_start (sysroot, opts.no_start);
  g_autofree char *unit_state = NULL;
  if (reason != NULL)
    unit_state = g_strdup_printf ("not started: %s; run 'stagehand finalize-staged' before "
                                  "rebooting",
                                  reason);
  /* Started synchronously and waited for: a .path unit would race with an
   * immediate reboot and silently skip finalization (ostree#2543). */
  else
    {
      if (progress != NULL)
        cli_progress_fd_phase (progress, "start-unit", -1, -1);
      if (!unit_control_start (STAGEHAND_FINALIZE_UNIT, 90, &error))
        return fail (progress, error);
      unit_state = g_strdup ("started");
    }
  g_autofree char *skipped = cli_devices_skipped_line (devices_skipped);
  g_autofree char *text
      = g_strdup_printf ("Staged %s; it becomes the default when the system "
                         "shuts down\n%s%s %s\n",
                         deployment, skipped, STAGEHAND_FINALIZE_UNIT, unit_state);
  cli_report ("stage", text, "deployment", deployment, "finalize_unit", unit_state, NULL);
  if (progress != NULL)
    cli_progress_fd_finish (progress, 0, deployment, unit_state, NULL);
  return 0;
}

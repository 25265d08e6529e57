/* Staging as `stage` and `deploy` share it, with progress on a terminal.
 * Kept apart from cli.c so the finalize-only binary never links the
 * importer (and libarchive). */
#include "config.h"

#include "cli-progress.h"
#include "cli.h"
#include "karg.h"
#include "ops.h"
#include "osrelease.h"

#include <stdio.h>
#include <unistd.h>

typedef struct
{
  gboolean on_terminal;
  gint64 started;
  gint64 last_shown;
  gboolean shown;
  CliProgressFd *fd; /* --progress-fd, or NULL */
  guint64 devices_skipped;
} Progress;

/* One updating line on a terminal, at most ten times a second. */
static void
show_on_terminal (Progress *state, const ImportProgress *p)
{
  gint64 now = g_get_monotonic_time ();
  if (!p->done && now - state->last_shown < G_USEC_PER_SEC / 10)
    return;
  state->last_shown = now;
  double secs = MAX (0.001, (now - state->started) / (double)G_USEC_PER_SEC);
  fprintf (stderr, "\r\033[Kimporting: %" G_GUINT64_FORMAT " files, %.1f MiB, %.1f MiB/s", p->files,
           p->bytes / 1048576.0, p->bytes / 1048576.0 / secs);
  state->shown = TRUE;
  if (p->done)
    fputc ('\n', stderr);
  fflush (stderr);
}

static void
show_progress (const ImportProgress *p, gpointer user_data)
{
  Progress *state = user_data;
  state->devices_skipped = p->devices_skipped;
  if (state->on_terminal)
    show_on_terminal (state, p);
  if (state->fd != NULL)
    cli_progress_fd_import (state->fd, p);
}

static void
show_phase (const StagePhaseInfo *info, gpointer user_data)
{
  static const char *const names[] = {
    [STAGE_PHASE_IMPORT] = "import",
    [STAGE_PHASE_KERNEL] = "kernel",
    [STAGE_PHASE_SYNC] = "sync",
  };
  Progress *state = user_data;
  if (state->fd != NULL)
    cli_progress_fd_phase (state->fd, names[info->phase], info->total_files, info->total_bytes);
}

int
cli_check_stage_options (const char *verb, const CliStageOptions *opts)
{
  /* Bad option values are usage errors, refused before the lock is taken. */
  if (opts->os != NULL && !os_name_is_valid (opts->os))
    return cli_usage_error (
        verb, "invalid --os \"%s\": use lower-case letters, digits, '.', '_' and '-'", opts->os);
  for (char **k = opts->kargs; k && *k; k++)
    {
      g_autoptr (GError) error = NULL;
      if (!karg_validate (*k, &error))
        return cli_usage_error (verb, "invalid --karg: %s", error->message);
    }
  return 0;
}

char *
cli_devices_skipped_line (guint64 devices_skipped)
{
  if (devices_skipped == 0)
    return g_strdup ("");
  return g_strdup_printf ("Skipped %" G_GUINT64_FORMAT " device node%s under the image's /dev "
                          "(at boot /dev is a devtmpfs)\n",
                          devices_skipped, devices_skipped == 1 ? "" : "s");
}

gboolean
cli_stage (const char *operation, const char *image, const CliStageOptions *opts,
           Sysroot **ret_sysroot, char **ret_deployment, guint64 *ret_devices_skipped,
           GError **error)
{
  g_autoptr (Sysroot) sysroot = NULL;
  if (!cli_open_sysroot (operation, opts->lock_timeout, CLI_LOCK_TIMEOUT_FLAG, TRUE, &sysroot,
                         error))
    return FALSE;
  Progress progress = { .on_terminal = isatty (STDERR_FILENO),
                        .started = g_get_monotonic_time (),
                        .fd = opts->progress_fd };
  /* Always: the count of device nodes skipped comes with the progress. */
  StageOptions stage_options = { .os = opts->os,
                                 .kargs = opts->kargs,
                                 .mark_pending = opts->mark_pending,
                                 .progress = show_progress,
                                 .progress_data = &progress };
  if (progress.fd != NULL)
    stage_options.phase = show_phase;
  gboolean ok = sysroot_stage (sysroot, image, &stage_options, ret_deployment, error);
  if (progress.shown && !ok)
    fputc ('\n', stderr);
  if (!ok)
    return FALSE;
  *ret_sysroot = g_steal_pointer (&sysroot);
  *ret_devices_skipped = progress.devices_skipped;
  return TRUE;
}

/* stage --progress-fd=N. One JSON object a line, written whole with one
 * write() where the pipe allows (lines are far below PIPE_BUF), so a reader
 * never sees half a line from us between its reads. */
#include "config.h"

#include "cli-progress.h"
#include "cli.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

/* Ten updates a second at most: enough for a progress bar, little enough
 * that a slow reader never holds the stage up. */
#define PROGRESS_INTERVAL_USEC (G_USEC_PER_SEC / 10)

struct CliProgressFd
{
  int fd;
  gboolean broken; /* a write failed: no more lines */
  gint64 started;
  gint64 last_update; /* of the current phase's last line */
  const char *phase;
  guint64 files, bytes; /* the import's, for the final line */
};

int
cli_progress_fd_open (const char *verb, int fd, CliProgressFd **ret_progress)
{
  int flags = fcntl (fd, F_GETFL);
  if (flags < 0)
    return cli_usage_error (verb, "invalid --progress-fd %d: %s", fd, g_strerror (errno));
  if ((flags & O_ACCMODE) == O_RDONLY)
    return cli_usage_error (verb, "invalid --progress-fd %d: not open for writing", fd);
  /* Not for the children of this process (none today): a reader waits for
   * the end of file that every writer's close gives. */
  (void)fcntl (fd, F_SETFD, FD_CLOEXEC); /* cannot fail on an open fd */
  /* A reader that goes away must not kill a stage half done (SIGPIPE's
   * default): the write fails with EPIPE instead, and staging goes on.
   * SIG_IGN is a disposition, not a handler. */
  signal (SIGPIPE, SIG_IGN);
  CliProgressFd *self = g_new0 (CliProgressFd, 1);
  self->fd = fd;
  self->started = g_get_monotonic_time ();
  *ret_progress = self;
  return 0;
}

static void
write_line (CliProgressFd *self, GString *line)
{
  if (self->broken)
    return;
  g_string_append (line, "}\n");
  const char *p = line->str;
  gsize left = line->len;
  while (left > 0)
    {
      ssize_t n = write (self->fd, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          self->broken = TRUE;
          log_event (LOG_WARNING, NULL, "no longer writing progress to --progress-fd %d: %s",
                     self->fd, g_strerror (errno));
          return;
        }
      p += n;
      left -= n;
    }
}

/* Starts a line with the keys every line has. */
static GString *
begin_line (CliProgressFd *self, const char *phase, gint64 now)
{
  GString *line = g_string_new (NULL);
  g_string_append_printf (line, "{\"version\": %d, \"phase\": ", CLI_PROGRESS_VERSION);
  cli_json_append_string (line, phase);
  g_string_append_printf (line, ", \"elapsed_usec\": %" G_GINT64_FORMAT, now - self->started);
  return line;
}

static void
append_total (GString *line, const char *key, gint64 value)
{
  if (value < 0)
    g_string_append_printf (line, ", \"%s\": null", key);
  else
    g_string_append_printf (line, ", \"%s\": %" G_GINT64_FORMAT, key, value);
}

void
cli_progress_fd_phase (CliProgressFd *self, const char *phase, gint64 total_files,
                       gint64 total_bytes)
{
  gint64 now = g_get_monotonic_time ();
  self->phase = phase;
  self->last_update = now;
  g_autoptr (GString) line = begin_line (self, phase, now);
  g_string_append (line, ", \"files\": 0, \"bytes\": 0");
  append_total (line, "total_files", total_files);
  append_total (line, "total_bytes", total_bytes);
  write_line (self, line);
}

void
cli_progress_fd_import (CliProgressFd *self, const ImportProgress *progress)
{
  self->files = progress->files;
  self->bytes = progress->bytes;
  gint64 now = g_get_monotonic_time ();
  if (now - self->last_update < PROGRESS_INTERVAL_USEC)
    return;
  self->last_update = now;
  g_autoptr (GString) line = begin_line (self, self->phase ? self->phase : "import", now);
  g_string_append_printf (line,
                          ", \"files\": %" G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
                          ", \"total_files\": null, \"total_bytes\": null",
                          progress->files, progress->bytes);
  write_line (self, line);
}

void
cli_progress_fd_finish (CliProgressFd *self, int exit_status, const char *deployment,
                        const char *finalize_unit, const char *error)
{
  g_autoptr (GString) line = begin_line (self, "done", g_get_monotonic_time ());
  g_string_append_printf (line,
                          ", \"files\": %" G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
                          ", \"result\": \"%s\", \"exit_status\": %d, \"deployment\": ",
                          self->files, self->bytes, exit_status == 0 ? "success" : "failure",
                          exit_status);
  cli_json_append_string (line, deployment);
  g_string_append (line, ", \"finalize_unit\": ");
  cli_json_append_string (line, finalize_unit);
  g_string_append (line, ", \"error\": ");
  /* A path in the message need not be UTF-8; JSON must be. */
  g_autofree char *valid_error = error ? g_utf8_make_valid (error, -1) : NULL;
  cli_json_append_string (line, valid_error);
  write_line (self, line);
}

void
cli_progress_fd_free (CliProgressFd *self)
{
  g_free (self);
}

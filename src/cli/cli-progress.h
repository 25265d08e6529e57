/* stage --progress-fd=N: progress as JSON lines for an updater that is not
 * on a terminal. The format is documented in stagehand(8) (man/stagehand.8.scd)
 * and docs/json-schema.json ("progress"). */
#pragma once

#include <glib.h>

#include "image-import.h"

G_BEGIN_DECLS

/* Bumped when a key changes meaning or goes away; new keys do not bump it. */
#define CLI_PROGRESS_VERSION 1

typedef struct CliProgressFd CliProgressFd;

/* Takes @fd (checked to be open for writing, then made close-on-exec) for
 * the progress lines of @verb. On a bad fd prints one usage line and
 * returns EXIT_USAGE, else 0 and *ret_progress. */
int cli_progress_fd_open (const char *verb, int fd, CliProgressFd **ret_progress);

/* A line for the start of @phase ("import", "kernel", "sync",
 * "start-unit"), with its totals where known (else -1). Always written. */
void cli_progress_fd_phase (CliProgressFd *self, const char *phase, gint64 total_files,
                            gint64 total_bytes);

/* A line for the import so far: at most one each PROGRESS_INTERVAL_USEC. */
void cli_progress_fd_import (CliProgressFd *self, const ImportProgress *progress);

/* The final line: phase "done", with the result. @error is the message
 * printed on stderr (NULL on success); @deployment and @finalize_unit may
 * be NULL. */
void cli_progress_fd_finish (CliProgressFd *self, int exit_status, const char *deployment,
                             const char *finalize_unit, const char *error);

void cli_progress_fd_free (CliProgressFd *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliProgressFd, cli_progress_fd_free)

G_END_DECLS

/* Structured events for the journal, with stable MESSAGE_IDs documented in
 * data/stagehand.catalog. Without a journal (no systemd), the message goes to
 * stderr instead — except errors, which the core also returns as a GError
 * and the CLI prints once. */
#pragma once

#include <glib.h>
#include <syslog.h>

G_BEGIN_DECLS

#define MESSAGE_ID_STAGE_DONE "5b2e1c7a0d9f4b7e8a6c3f1d2e4b6a80"
#define MESSAGE_ID_FINALIZE_START "a1f0c3e2b4d6481f9e7c5a3b1d0f2e41"
#define MESSAGE_ID_FINALIZE_DONE "c7e9a1b3d5f74e2a8c6b4d2f0e1a3c52"
#define MESSAGE_ID_FINALIZE_FAILED "e3b5d7f9a1c34b6d8f0e2a4c6b8d0f63"
#define MESSAGE_ID_LOCK_WAIT "9d1f3b5c7e9a4d2b8f6e4c2a0b1d3f74"
#define MESSAGE_ID_HOLD "2c4e6a8b0d1f4e3a9c7b5d3f1e0a2c85"
#define MESSAGE_ID_PREVIOUS_FINALIZE_FAILED "f4a6c8e0b2d44f5b9a1c3e5d7f9b1d96"
#define MESSAGE_ID_STAGED_NEVER_FINALIZED "d23da4343d6546d6abd14e868266548f"
#define MESSAGE_ID_BOOT_FELL_BACK "24e76ae49c3544688236b13032a4c83d"
#define MESSAGE_ID_ROOT_SETUP "5eb8fffac07841208e0673537001d9ea"
#define MESSAGE_ID_ETC_CONFLICT "28a510e2ef1644b4aa81beda442f0148"

typedef struct
{
  const char *message_id; /* NULL for plain messages */
  const char *os;
  const char *deployment; /* "<os>/<id>" */
  const char *step;
  guint64 duration_usec; /* 0 = none */
} LogFields;

/* Logs one event. @fields may be NULL. */
void log_event (int priority, const LogFields *fields, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* TRUE when the journal socket is there to take messages. */
gboolean log_journal_available (void);

/* Makes the stderr fallback quiet for priorities above @max_priority (the
 * CLI's -v raises it to LOG_INFO; the default shows notices and worse). */
void log_set_stderr_level (int max_priority);

G_END_DECLS

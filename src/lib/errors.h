/* Error domain and the small helpers every layer uses to report failures.
 *
 * Convention (ostree dialect): a function that can fail returns gboolean and
 * takes GError **error last. The message names the step and the path; each
 * caller adds its own context with g_prefix_error(), so the CLI can print the
 * whole chain once as "stagehand: <what failed>: <why>".
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define STAGEHAND_ERROR (stagehand_error_quark ())
GQuark stagehand_error_quark (void);

typedef enum
{
  STAGEHAND_ERROR_FAILED,
  /* Bad input from the caller (image, karg, option value): exit 1. */
  STAGEHAND_ERROR_INVALID,
  /* The sysroot was never initialised. */
  STAGEHAND_ERROR_NOT_INITIALIZED,
  /* A state file (staged record, origin, entry, verdict) does not parse. */
  STAGEHAND_ERROR_CORRUPT,
  /* The sysroot lock could not be taken in time: exit 75 (EX_TEMPFAIL). */
  STAGEHAND_ERROR_LOCK_TIMEOUT,
  /* The lock is held by our own ancestor: waiting would deadlock. */
  STAGEHAND_ERROR_LOCK_DEADLOCK,
  /* The operation does not apply in the current state (e.g. rollback while staged). */
  STAGEHAND_ERROR_STATE,
  /* Not enough free space for the operation. */
  STAGEHAND_ERROR_NO_SPACE,
  /* Another tool changed the boot configuration while it was switched. */
  STAGEHAND_ERROR_CHANGED,
} StagehandError;

/* Sets @error from errno with a printf-style prefix: "<prefix>: <strerror>".
 * Always returns FALSE so callers can write `return throw_errno (error, ...)`.
 * errno is preserved. */
gboolean throw_errno (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Same for an explicit errno value (positive or negative, as libmount and
 * libsystemd return -errno). */
gboolean throw_errno_value (GError **error, int errnum, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* Sets a STAGEHAND_ERROR with @code. Always returns FALSE. */
gboolean throw_error (GError **error, StagehandError code, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);

/* g_prefix_error() that returns FALSE, for `return prefix_error (error, ...)`. */
gboolean prefix_error (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS

/* Starting and stopping the finalize unit over D-Bus (libsystemd's sd-bus).
 *
 * `stage` starts the unit synchronously and waits for its job: a .path unit
 * would race with an immediate reboot and silently skip finalization.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* TRUE when the system was booted with systemd as PID 1 (sd_booted()). */
gboolean unit_control_available (void);

/* Starts @unit with mode "replace" on the system bus and waits for the job
 * to finish (JobRemoved), bounded by @timeout_sec. Fails naming the unit and
 * the job result ("failed", "timeout", "dependency", ...) unless it is "done". */
gboolean unit_control_start (const char *unit, guint timeout_sec, GError **error);

/* Stops @unit the same way. Stopping an inactive unit is success. */
gboolean unit_control_stop (const char *unit, guint timeout_sec, GError **error);

G_END_DECLS

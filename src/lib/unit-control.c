/* Starting and stopping a unit the way `systemctl start` does: queue a job
 * with mode "replace" and wait for its JobRemoved signal, bounded in time.
 */
#include "config.h"

#include "unit-control.h"

#include "errors.h"

#include <errno.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sd_bus, sd_bus_flush_close_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sd_bus_message, sd_bus_message_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sd_bus_slot, sd_bus_slot_unref)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (sd_bus_error, sd_bus_error_free)

#define SYSTEMD_SERVICE "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

typedef struct
{
  char *job_path; /* NULL until the StartUnit/StopUnit reply is in */
  char *result;   /* set by the JobRemoved signal for job_path */
  int read_error;
} JobWait;

static void
job_wait_clear (JobWait *wait)
{
  g_clear_pointer (&wait->job_path, g_free);
  g_clear_pointer (&wait->result, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (JobWait, job_wait_clear)

gboolean
unit_control_available (void)
{
  return sd_booted () > 0;
}

static int
on_job_removed (sd_bus_message *message, void *userdata, sd_bus_error *ret_error)
{
  JobWait *wait = userdata;
  guint32 id;
  const char *path, *unit, *result;

  int r = sd_bus_message_read (message, "uoss", &id, &path, &unit, &result);
  if (r < 0)
    {
      wait->read_error = r;
      return 0;
    }
  if (wait->job_path != NULL && wait->result == NULL && g_str_equal (path, wait->job_path))
    wait->result = g_strdup (result);
  return 0;
}

/* Fails with "<verb> <unit>: <step>: <bus error message or strerror>". */
static gboolean
throw_bus_error (GError **error, const char *verb, const char *unit, const char *step,
                 const sd_bus_error *bus_error, int r)
{
  if (sd_bus_error_is_set (bus_error) && bus_error->message != NULL)
    return throw_error (error, STAGEHAND_ERROR_FAILED, "%s %s: %s: %s", verb, unit, step,
                        bus_error->message);
  return throw_errno_value (error, r, "%s %s: %s", verb, unit, step);
}

/* @method is "StartUnit" or "StopUnit"; @verb ("starting", "stopping") is for
 * messages. */
static gboolean
run_unit_job (const char *method, const char *verb, const char *unit, guint timeout_sec,
              GError **error)
{
  g_return_val_if_fail (unit != NULL, FALSE);

  const gint64 deadline = g_get_monotonic_time () + (gint64)timeout_sec * G_USEC_PER_SEC;
  g_auto (sd_bus_error) bus_error = SD_BUS_ERROR_NULL;
  g_auto (JobWait) wait = { 0 };

  g_autoptr (sd_bus) bus = NULL;
  int r = sd_bus_open_system (&bus);
  if (r < 0)
    return throw_errno_value (error, r, "%s %s: connecting to the system bus", verb, unit);

  /* Each method call is bounded too, not only the wait for the job. */
  if (timeout_sec > 0)
    {
      r = sd_bus_set_method_call_timeout (bus, (guint64)timeout_sec * G_USEC_PER_SEC);
      if (r < 0)
        return throw_errno_value (error, r, "%s %s: setting the D-Bus call timeout", verb, unit);
    }

  /* Match before queueing the job: the job can finish before the reply to
   * StartUnit is read, and a signal that arrives before its match exists is
   * lost. Signals queued while the call waits are dispatched afterwards, when
   * the job path is known. */
  g_autoptr (sd_bus_slot) slot = NULL;
  r = sd_bus_match_signal (bus, &slot, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved",
                           on_job_removed, &wait);
  if (r < 0)
    return throw_errno_value (error, r, "%s %s: adding a match for JobRemoved", verb, unit);

  /* systemd sends job signals on the system bus only while someone is
   * subscribed (the job's requester is tracked as well, but be explicit). */
  r = sd_bus_call_method (bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe",
                          &bus_error, NULL, "");
  if (r < 0)
    return throw_bus_error (error, verb, unit, "subscribing to systemd signals", &bus_error, r);

  g_autoptr (sd_bus_message) reply = NULL;
  r = sd_bus_call_method (bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, method, &bus_error,
                          &reply, "ss", unit, "replace");
  if (r < 0)
    {
      /* A unit that is not loaded is not running: nothing to stop. */
      if (g_str_equal (method, "StopUnit")
          && sd_bus_error_has_name (&bus_error, "org.freedesktop.systemd1.NoSuchUnit"))
        return TRUE;
      return throw_bus_error (error, verb, unit, method, &bus_error, r);
    }

  const char *job_path;
  r = sd_bus_message_read (reply, "o", &job_path);
  if (r < 0)
    return throw_errno_value (error, r, "%s %s: reading the %s reply", verb, unit, method);
  wait.job_path = g_strdup (job_path);

  for (;;)
    {
      r = sd_bus_process (bus, NULL);
      if (r < 0)
        return throw_errno_value (error, r, "%s %s: waiting for job %s", verb, unit, wait.job_path);
      if (wait.read_error < 0)
        return throw_errno_value (error, wait.read_error, "%s %s: reading a JobRemoved signal",
                                  verb, unit);
      if (wait.result != NULL)
        break;
      if (r > 0)
        continue;

      gint64 now = g_get_monotonic_time ();
      if (now >= deadline)
        return throw_error (error, STAGEHAND_ERROR_FAILED,
                            "%s %s: job %s did not finish within %u s", verb, unit, wait.job_path,
                            timeout_sec);
      r = sd_bus_wait (bus, (guint64)(deadline - now));
      if (r < 0 && r != -EINTR)
        return throw_errno_value (error, r, "%s %s: waiting for job %s", verb, unit, wait.job_path);
    }

  if (!g_str_equal (wait.result, "done"))
    return throw_error (error, STAGEHAND_ERROR_FAILED,
                        "%s %s: job failed (result: %s); see 'journalctl -u %s'", verb, unit,
                        wait.result, unit);
  return TRUE;
}

gboolean
unit_control_start (const char *unit, guint timeout_sec, GError **error)
{
  return run_unit_job ("StartUnit", "starting", unit, timeout_sec, error);
}

gboolean
unit_control_stop (const char *unit, guint timeout_sec, GError **error)
{
  return run_unit_job ("StopUnit", "stopping", unit, timeout_sec, error);
}

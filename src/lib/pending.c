#include "config.h"

#include "pending.h"

const DeploymentRecordFormat pending_marker_format = {
  .group = "staged-pending",
  .time_key = "staged-usec",
  .noun = "staged-pending marker",
  .remedy = "",
};

PendingState
pending_marker_assess (const DeploymentRecord *marker, gboolean staged_record_exists,
                       const Verdict *last_verdict, const char *booted)
{
  if (marker == NULL)
    return PENDING_NONE;
  /* The record is in /run: while it is there, this is the boot that staged
   * it and the finalize may still come. */
  if (staged_record_exists)
    return PENDING_STAGED;
  /* A finalize ran for it (and was killed between its verdict and the
   * marker's removal): the verdict says how it went, and the boot-time
   * check reports a failed one on its own. The name alone is not enough:
   * ids are serials, and a deployment that failed to finalize is removed
   * by the next stage, which then gets the same id — a verdict of that
   * earlier attempt must not hide the loss of the new one. So the verdict
   * must also be from after the staging. */
  g_autofree char *name = deployment_record_name (marker);
  /* It runs: it was finalized, whether or not a verdict could be written
   * (a read-only state directory keeps both the verdict and the marker's
   * removal from happening). A deployment of that name cannot have been
   * staged again while it was booted: ids are only given again once the
   * deployment is gone. */
  if (g_strcmp0 (booted, name) == 0)
    return PENDING_FINALIZED;
  if (last_verdict != NULL && g_strcmp0 (last_verdict->deployment, name) == 0
      && last_verdict->started >= marker->staged_time)
    return PENDING_FINALIZED;
  return PENDING_LOST;
}

char *
pending_marker_staged_at (const DeploymentRecord *marker)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_local (marker->staged_time / G_USEC_PER_SEC);
  return t ? g_date_time_format (t, "%Y-%m-%d %H:%M:%S %Z") : g_strdup ("an unknown time");
}

char *
pending_marker_describe_lost (const DeploymentRecord *marker)
{
  g_autofree char *name = deployment_record_name (marker);
  g_autofree char *when = pending_marker_staged_at (marker);
  return g_strdup_printf (
      "deployment %s was staged at %s but never finalized: the finalize did not run before the "
      "machine went down (power loss, crash, or the finalize process was killed); the previous "
      "default was booted",
      name, when);
}

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

#include "config.h"

#include "pending.h"
#include "errors.h"
#include "origin.h"
#include "osrelease.h"

#include <string.h>

#define GROUP "staged-pending"

void
pending_marker_free (PendingMarker *marker)
{
  if (marker == NULL)
    return;
  g_free (marker->os);
  g_free (marker->id);
  g_free (marker);
}

char *
pending_marker_to_data (const PendingMarker *marker, gsize *ret_len)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, GROUP, "os", marker->os);
  g_key_file_set_string (kf, GROUP, "id", marker->id);
  g_key_file_set_int64 (kf, GROUP, "staged-usec", marker->staged_usec);
  return g_key_file_to_data (kf, ret_len, NULL);
}

gboolean
pending_marker_parse (const char *data, gsize len, const char *what, PendingMarker **ret_marker,
                      GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "staged-pending marker %s is corrupt: %s",
                        what, local_error->message);
  g_autoptr (PendingMarker) m = g_new0 (PendingMarker, 1);
  m->os = g_key_file_get_string (kf, GROUP, "os", NULL);
  m->id = g_key_file_get_string (kf, GROUP, "id", NULL);
  m->staged_usec = g_key_file_get_int64 (kf, GROUP, "staged-usec", NULL);
  if (!os_name_is_valid (m->os) || !deployment_id_is_valid (m->id))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "staged-pending marker %s is corrupt: no valid os and id", what);
  *ret_marker = g_steal_pointer (&m);
  return TRUE;
}

char *
pending_marker_deployment (const PendingMarker *marker)
{
  return g_strdup_printf ("%s/%s", marker->os, marker->id);
}

PendingState
pending_marker_assess (const PendingMarker *marker, gboolean staged_record_exists,
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
  g_autofree char *name = pending_marker_deployment (marker);
  /* It runs: it was finalized, whether or not a verdict could be written
   * (a read-only state directory keeps both the verdict and the marker's
   * removal from happening). A deployment of that name cannot have been
   * staged again while it was booted: ids are only given again once the
   * deployment is gone. */
  if (g_strcmp0 (booted, name) == 0)
    return PENDING_FINALIZED;
  if (last_verdict != NULL && g_strcmp0 (last_verdict->deployment, name) == 0
      && last_verdict->started >= marker->staged_usec)
    return PENDING_FINALIZED;
  return PENDING_LOST;
}

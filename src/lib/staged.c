#include "config.h"

#include "staged.h"
#include "errors.h"
#include "origin.h"
#include "osrelease.h"

#define GROUP "staged"

void
staged_record_free (StagedRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->os);
  g_free (record->id);
  g_free (record);
}

char *
staged_record_to_data (const StagedRecord *record, gsize *ret_len)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, GROUP, "os", record->os);
  g_key_file_set_string (kf, GROUP, "id", record->id);
  g_key_file_set_int64 (kf, GROUP, "staged-at", record->staged_at);
  return g_key_file_to_data (kf, ret_len, NULL);
}

gboolean
staged_record_parse (const char *data, gsize len, const char *what, StagedRecord **ret_record,
                     GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "staged record %s is corrupt: %s (remove it with 'stagehand unstage')",
                        what, local_error->message);
  g_autoptr (StagedRecord) r = g_new0 (StagedRecord, 1);
  r->os = g_key_file_get_string (kf, GROUP, "os", NULL);
  r->id = g_key_file_get_string (kf, GROUP, "id", NULL);
  r->staged_at = g_key_file_get_int64 (kf, GROUP, "staged-at", NULL);
  if (!os_name_is_valid (r->os) || !deployment_id_is_valid (r->id))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "staged record %s is corrupt: no valid os and id (remove it with "
                        "'stagehand unstage')",
                        what);
  *ret_record = g_steal_pointer (&r);
  return TRUE;
}

#include "config.h"

#include "deployment-record.h"
#include "errors.h"
#include "origin.h"
#include "osrelease.h"

void
deployment_record_free (DeploymentRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->os);
  g_free (record->id);
  g_free (record);
}

char *
deployment_record_to_data (const DeploymentRecordFormat *format, const DeploymentRecord *record,
                           gsize *ret_len)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, format->group, "os", record->os);
  g_key_file_set_string (kf, format->group, "id", record->id);
  g_key_file_set_int64 (kf, format->group, format->time_key, record->staged_time);
  return g_key_file_to_data (kf, ret_len, NULL);
}

gboolean
deployment_record_parse (const DeploymentRecordFormat *format, const char *data, gsize len,
                         const char *what, DeploymentRecord **ret_record, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s %s is corrupt: %s%s", format->noun,
                        what, local_error->message, format->remedy);
  g_autoptr (DeploymentRecord) r = g_new0 (DeploymentRecord, 1);
  r->os = g_key_file_get_string (kf, format->group, "os", NULL);
  r->id = g_key_file_get_string (kf, format->group, "id", NULL);
  r->staged_time = g_key_file_get_int64 (kf, format->group, format->time_key, NULL);
  if (!os_name_is_valid (r->os) || !deployment_id_is_valid (r->id))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s %s is corrupt: no valid os and id%s",
                        format->noun, what, format->remedy);
  *ret_record = g_steal_pointer (&r);
  return TRUE;
}

char *
deployment_record_name (const DeploymentRecord *record)
{
  return g_strdup_printf ("%s/%s", record->os, record->id);
}

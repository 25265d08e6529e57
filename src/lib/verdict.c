#include "config.h"

#include "verdict.h"
#include "errors.h"

#include <string.h>

#define GROUP "finalize"
#define STEPS_GROUP "durations-usec"
#define ETC_GROUP "etc-merge"

static void
verdict_step_free (VerdictStep *step)
{
  g_free (step->name);
  g_free (step);
}

Verdict *
verdict_new (void)
{
  Verdict *v = g_new0 (Verdict, 1);
  v->steps = g_ptr_array_new_with_free_func ((GDestroyNotify)verdict_step_free);
  v->etc_conflicts = g_ptr_array_new_with_free_func (g_free);
  return v;
}

void
verdict_free (Verdict *verdict)
{
  if (verdict == NULL)
    return;
  g_free (verdict->result);
  g_free (verdict->deployment);
  g_free (verdict->step);
  g_free (verdict->error);
  g_free (verdict->boot_id);
  g_free (verdict->switched);
  g_ptr_array_unref (verdict->steps);
  g_ptr_array_unref (verdict->etc_conflicts);
  g_free (verdict);
}

void
verdict_add_step (Verdict *verdict, const char *name, guint64 usec)
{
  VerdictStep *step = g_new0 (VerdictStep, 1);
  step->name = g_strdup (name);
  step->usec = usec;
  g_ptr_array_add (verdict->steps, step);
}

void
verdict_begin_step (Verdict *verdict, const char *name)
{
  if (verdict == NULL)
    return;
  g_free (verdict->step);
  verdict->step = g_strdup (name);
  verdict->step_started = g_get_monotonic_time ();
}

void
verdict_end_step (Verdict *verdict)
{
  if (verdict == NULL || verdict->step == NULL)
    return;
  verdict_add_step (verdict, verdict->step, g_get_monotonic_time () - verdict->step_started);
  g_clear_pointer (&verdict->step, g_free);
}

char *
verdict_to_data (const Verdict *v, gsize *ret_len)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, GROUP, "result", v->result);
  if (v->deployment)
    g_key_file_set_string (kf, GROUP, "deployment", v->deployment);
  if (v->step)
    g_key_file_set_string (kf, GROUP, "step", v->step);
  if (v->error)
    g_key_file_set_string (kf, GROUP, "error", v->error);
  g_key_file_set_int64 (kf, GROUP, "started", v->started);
  g_key_file_set_int64 (kf, GROUP, "finished", v->finished);
  if (v->boot_id)
    g_key_file_set_string (kf, GROUP, "boot-id", v->boot_id);
  if (v->switched)
    g_key_file_set_string (kf, GROUP, "switch", v->switched);
  g_key_file_set_boolean (kf, GROUP, "reported", v->reported);
  for (guint i = 0; i < v->steps->len; i++)
    {
      VerdictStep *s = v->steps->pdata[i];
      g_key_file_set_uint64 (kf, STEPS_GROUP, s->name, s->usec);
    }
  if (v->etc_merged)
    {
      g_key_file_set_uint64 (kf, ETC_GROUP, "changes", v->etc_changes);
      g_key_file_set_string_list (kf, ETC_GROUP, "conflicts",
                                  (const char *const *)v->etc_conflicts->pdata,
                                  v->etc_conflicts->len);
    }
  return g_key_file_to_data (kf, ret_len, NULL);
}

gboolean
verdict_parse (const char *data, gsize len, const char *what, Verdict **ret_verdict, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: %s", what,
                        local_error->message);
  g_autoptr (Verdict) v = verdict_new ();
  v->result = g_key_file_get_string (kf, GROUP, "result", NULL);
  if (v->result == NULL
      || !(strcmp (v->result, VERDICT_SUCCESS) == 0 || strcmp (v->result, VERDICT_FAILED) == 0
           || strcmp (v->result, VERDICT_NOT_ATTEMPTED) == 0))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: no valid result", what);
  v->deployment = g_key_file_get_string (kf, GROUP, "deployment", NULL);
  v->step = g_key_file_get_string (kf, GROUP, "step", NULL);
  v->error = g_key_file_get_string (kf, GROUP, "error", NULL);
  v->started = g_key_file_get_int64 (kf, GROUP, "started", NULL);
  v->finished = g_key_file_get_int64 (kf, GROUP, "finished", NULL);
  v->boot_id = g_key_file_get_string (kf, GROUP, "boot-id", NULL);
  v->switched = g_key_file_get_string (kf, GROUP, "switch", NULL);
  v->reported = g_key_file_get_boolean (kf, GROUP, "reported", NULL);
  g_auto (GStrv) keys = g_key_file_get_keys (kf, STEPS_GROUP, NULL, NULL);
  for (char **k = keys; k && *k; k++)
    verdict_add_step (v, *k, g_key_file_get_uint64 (kf, STEPS_GROUP, *k, NULL));
  v->etc_merged = g_key_file_has_group (kf, ETC_GROUP);
  v->etc_changes = g_key_file_get_uint64 (kf, ETC_GROUP, "changes", NULL);
  g_auto (GStrv) conflicts = g_key_file_get_string_list (kf, ETC_GROUP, "conflicts", NULL, NULL);
  for (char **c = conflicts; c && *c; c++)
    g_ptr_array_add (v->etc_conflicts, g_strdup (*c));
  *ret_verdict = g_steal_pointer (&v);
  return TRUE;
}

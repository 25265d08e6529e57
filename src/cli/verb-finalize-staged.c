#include "config.h"

#include "cli.h"
#include "errors.h"
#include "hold.h"
#include "journal.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

/* The staged record, read on its own: when the state as a whole does not
 * load (a corrupt origin), the record may still say what was staged.
 * Returns FALSE when there is no record; *ret_name is NULL when there is
 * one but it does not parse. */
static gboolean
read_staged_record (Sysroot *sysroot, char **ret_name)
{
  g_autoptr (DeploymentRecord) record = NULL;
  g_autoptr (GError) local_error = NULL;
  *ret_name = NULL;
  if (!sysroot_read_staged_record (sysroot, &record, &local_error))
    return g_error_matches (local_error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT);
  if (record == NULL)
    return FALSE;
  *ret_name = deployment_record_name (record);
  return TRUE;
}

/* A finalize that could not even start still leaves a verdict, so the next
 * boot reports it (stagehand-boot-complete.service): without one, an update
 * staged before shutdown would be lost without a word. Takes @deployment
 * ("<os>/<id>" or NULL). Best effort: the error itself is what the caller
 * reports. Returns whether the verdict was written. */
static gboolean
record_unfinalized (Sysroot *sysroot, const char *result, const char *step, char *deployment,
                    const GError *cause)
{
  g_autoptr (Verdict) v = verdict_new ();
  v->result = g_strdup (result);
  v->step = g_strdup (step);
  v->error = g_strdup (cause->message);
  v->deployment = deployment;
  v->started = v->finished = g_get_real_time ();
  v->boot_id = sysroot_boot_id ();
  gboolean written = sysroot_write_verdict (sysroot, v, NULL);
  LogFields f
      = { .message_id = MESSAGE_ID_FINALIZE_FAILED, .deployment = v->deployment, .step = step };
  log_event (LOG_ERR, &f, "finalize %s during %s: %s", result, step, cause->message);
  return written;
}

/* At shutdown the lock wait must fit inside the unit's stop timeout: when
 * it cannot be taken, the verdict says so (not-attempted) for the next boot. */
static gboolean
finalize_locked (Sysroot *sysroot, GError **error)
{
  if (!sysroot_require_initialized (sysroot, error))
    return FALSE;
  if (!sysroot_lock (sysroot, "finalize", sysroot->config->finalize_lock_timeout,
                     cli_report_lock_wait, "finalize", error))
    {
      cli_explain_lock_timeout (*error, sysroot, CLI_LOCK_TIMEOUT_FINALIZE);
      char *staged = NULL;
      (void)read_staged_record (sysroot, &staged); /* best effort: only names it */
      /* The staged-pending marker stays: without the lock, removing it
       * could remove the one a stage holding the lock just wrote. The next
       * boot removes it silently: this verdict accounts for it. */
      (void)record_unfinalized (sysroot, VERDICT_NOT_ATTEMPTED, "lock", staged, *error);
      return FALSE;
    }
  /* A state that does not load (a corrupt origin or staged record) fails
   * the finalize before anything is touched; if something was staged, that
   * is a failed update the next boot must hear about. */
  if (!sysroot_load (sysroot, error))
    {
      char *staged = NULL;
      /* With the verdict written, the staged-pending marker has done its
       * job (best effort: the next boot removes it silently anyway). */
      if (read_staged_record (sysroot, &staged)
          && record_unfinalized (sysroot, VERDICT_FAILED, "load", staged, *error))
        (void)sysroot_remove_pending (sysroot, NULL);
      return FALSE;
    }

  g_autoptr (Verdict) verdict = NULL;
  if (!sysroot_finalize_staged (sysroot, &verdict, error))
    return FALSE;
  if (verdict == NULL)
    {
      cli_report ("finalize-staged", "Nothing is staged; the boot configuration is unchanged\n",
                  "result", "nothing-staged", "deployment", NULL, NULL);
      return TRUE;
    }
  g_autoptr (GString) text = g_string_new (NULL);
  g_string_append_printf (text, "Finalized %s; it is the default from the next boot\n",
                          verdict->deployment);
  if (cli_globals.verbose)
    for (guint i = 0; i < verdict->steps->len; i++)
      {
        VerdictStep *s = verdict->steps->pdata[i];
        g_string_append_printf (text, "  %-16s %8.3f ms\n", s->name, s->usec / 1000.0);
      }
  cli_report ("finalize-staged", text->str, "result", verdict->result, "deployment",
              verdict->deployment, NULL);
  return TRUE;
}

int
verb_finalize_staged (int argc, char **argv)
{
  gboolean hold = FALSE;
  const GOptionEntry entries[] = {
    { "hold", 0, 0, G_OPTION_ARG_NONE, &hold,
      "Hold the boot directory open and finalize on SIGTERM (run by " STAGEHAND_FINALIZE_UNIT ")",
      NULL },
    { NULL },
  };
  if (!cli_parse_options_full ("finalize-staged", NULL,
                               "Make the staged deployment the default: now, or with --hold when "
                               "SIGTERM arrives.",
                               entries, &hold, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("finalize-staged", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  if (!cli_open_sysroot (NULL, -1, CLI_LOCK_TIMEOUT_FINALIZE, FALSE, &sysroot, &error))
    return cli_fail (error);
  if (hold)
    {
      int sig;
      if (!sysroot_require_initialized (sysroot, &error)
          || !hold_until_shutdown (&sysroot, &sig, &error))
        return cli_fail (error);
    }
  if (!finalize_locked (sysroot, &error))
    return cli_fail (error);
  return 0;
}

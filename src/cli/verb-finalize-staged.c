#include "config.h"

#include "cli.h"
#include "errors.h"
#include "hold.h"
#include "journal.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

/* At shutdown the lock wait must fit inside the unit's stop timeout: when
 * it cannot be taken, the verdict says so (not-attempted) for the next boot. */
static gboolean
finalize_locked (Sysroot *sysroot, GError **error)
{
  if (!sysroot_require_initialized (sysroot, error))
    return FALSE;
  g_autoptr (GError) lock_error = NULL;
  if (!sysroot_lock (sysroot, "finalize", sysroot->config->finalize_lock_timeout,
                     cli_report_lock_wait, "finalize", &lock_error))
    {
      g_autoptr (Verdict) v = verdict_new ();
      v->result = g_strdup (VERDICT_NOT_ATTEMPTED);
      v->step = g_strdup ("lock");
      v->error = g_strdup (lock_error->message);
      v->started = v->finished = g_get_real_time ();
      v->boot_id = sysroot_boot_id ();
      /* Best effort: the lock error is what we report. */
      (void)sysroot_write_verdict (sysroot, v, NULL);
      g_propagate_error (error, g_steal_pointer (&lock_error));
      return FALSE;
    }

  g_autoptr (Verdict) verdict = NULL;
  if (!sysroot_load (sysroot, error) || !sysroot_finalize_staged (sysroot, &verdict, error))
    return FALSE;
  if (verdict == NULL)
    printf ("Nothing is staged; the boot configuration is unchanged\n");
  else
    {
      printf ("Finalized %s; it is the default from the next boot\n", verdict->deployment);
      if (cli_globals.verbose)
        for (guint i = 0; i < verdict->steps->len; i++)
          {
            VerdictStep *s = verdict->steps->pdata[i];
            printf ("  %-16s %8.3f ms\n", s->name, s->usec / 1000.0);
          }
    }
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
  if (!cli_parse_options ("finalize-staged", NULL,
                          "Make the staged deployment the default: now, or with --hold when "
                          "SIGTERM arrives.",
                          entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("finalize-staged", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  if (!cli_open_sysroot (NULL, -1, FALSE, &sysroot, &error))
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

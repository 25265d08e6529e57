#include "config.h"

#include "cli.h"
#include "ops.h"
#include "unit-control.h"
#include "verbs.h"

#include <stdio.h>

int
verb_unstage (int argc, char **argv)
{
  if (!cli_parse_options ("unstage", NULL,
                          "Drop the staged deployment; it will not become the default.", NULL,
                          &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("unstage", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  gboolean was_staged;
  /* No state load: a corrupt staged record must still be removable. */
  if (!cli_open_sysroot ("unstage", -1, CLI_LOCK_TIMEOUT_CONF, FALSE, &sysroot, &error)
      || !sysroot_unstage (sysroot, &was_staged, &error))
    return cli_fail (error);
  /* The record is gone first, so the finalizer we stop now finds nothing
   * to do even if it gets SIGTERM; stopping it releases /boot. */
  sysroot_lock_release (g_steal_pointer (&sysroot->lock));
  if (sysroot->is_host && unit_control_available ()
      && !unit_control_stop (STAGEHAND_FINALIZE_UNIT, 60, &error))
    return cli_fail (error);
  cli_report ("unstage",
              was_staged ? "Unstaged; the default deployment is unchanged\n"
                         : "Nothing was staged\n",
              "unstaged", was_staged ? "yes" : "no", NULL);
  return 0;
}

#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

int
verb_rollback (int argc, char **argv)
{
  if (!cli_parse_options ("rollback", NULL, "Make the previous deployment the default.", NULL,
                          &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("rollback", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autofree char *deployment = NULL;
  if (!cli_open_sysroot ("rollback", -1, CLI_LOCK_TIMEOUT_CONF, TRUE, &sysroot, &error)
      || !sysroot_rollback (sysroot, &deployment, &error))
    return cli_fail (error);
  g_autofree char *text
      = g_strdup_printf ("Rolled back: %s is the default from the next boot\n", deployment);
  cli_report ("rollback", text, "deployment", deployment, NULL);
  return 0;
}

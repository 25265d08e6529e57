#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

int
verb_init (int argc, char **argv)
{
  if (!cli_parse_options ("init", NULL, "Create the state layout and an empty boot configuration.",
                          NULL, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("init", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  if (!cli_open_sysroot (NULL, -1, FALSE, &sysroot, &error)
      || !sysroot_init (sysroot, sysroot->config->lock_timeout, cli_report_lock_wait, "init",
                        &error))
    return cli_fail (error);
  printf ("Initialised %s (boot directory %s)\n", sysroot->path, sysroot->boot_path);
  return 0;
}

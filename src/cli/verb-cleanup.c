#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

int
verb_cleanup (int argc, char **argv)
{
  if (!cli_parse_options ("cleanup", NULL,
                          "Remove deployments and boot files that nothing refers to.", NULL, &argc,
                          &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("cleanup", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  CleanupStats stats;
  if (!cli_open_sysroot ("cleanup", -1, CLI_LOCK_TIMEOUT_CONF, TRUE, &sysroot, &error)
      || !sysroot_cleanup (sysroot, &stats, &error))
    return cli_fail (error);
  g_autofree char *deployments = g_strdup_printf ("%u", stats.deployments_removed);
  g_autofree char *kernels = g_strdup_printf ("%u", stats.kernels_removed);
  g_autofree char *leftovers = g_strdup_printf ("%u", stats.temp_removed);
  g_autofree char *text
      = g_strdup_printf ("Removed %s deployment(s), %s kernel(s), %s leftover(s) of interrupted "
                         "runs\n",
                         deployments, kernels, leftovers);
  cli_report ("cleanup", text, "deployments_removed", deployments, "kernels_removed", kernels,
              "leftovers_removed", leftovers, NULL);
  return 0;
}

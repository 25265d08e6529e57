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
  if (!cli_open_sysroot ("cleanup", -1, TRUE, &sysroot, &error)
      || !sysroot_cleanup (sysroot, &stats, &error))
    return cli_fail (error);
  printf ("Removed %u deployment(s), %u kernel(s), %u leftover(s) of interrupted runs\n",
          stats.deployments_removed, stats.kernels_removed, stats.temp_removed);
  return 0;
}

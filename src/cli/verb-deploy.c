#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

int
verb_deploy (int argc, char **argv)
{
  CliStageOptions opts = { .lock_timeout = -1 };
  const GOptionEntry entries[] = {
    CLI_STAGE_OPTION_ENTRIES (opts),
    { NULL },
  };
  if (!cli_parse_options ("deploy", "IMAGE",
                          "Stage IMAGE and make it the default now (image building, first "
                          "install).",
                          entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc < 2)
    return cli_usage_error ("deploy", "missing IMAGE");
  if (argc > 2)
    return cli_usage_error ("deploy", "unexpected argument \"%s\"", argv[2]);
  int r = cli_check_stage_options ("deploy", &opts);
  if (r != 0)
    return r;

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autofree char *deployment = NULL;
  g_autoptr (Verdict) verdict = NULL;
  guint64 devices_skipped = 0;
  /* One lock hold for both halves: nobody can slip in between. */
  if (!cli_stage ("deploy", argv[1], &opts, &sysroot, &deployment, &devices_skipped, &error)
      || !sysroot_load (sysroot, &error) || !sysroot_finalize_staged (sysroot, &verdict, &error))
    return cli_fail (error);
  g_autofree char *skipped = cli_devices_skipped_line (devices_skipped);
  g_autofree char *text = g_strdup_printf ("Deployed %s; it is the default from the next boot\n%s",
                                           deployment, skipped);
  cli_report ("deploy", text, "deployment", deployment, NULL);
  return 0;
}

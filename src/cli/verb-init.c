#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <errno.h>
#include <stdio.h>

int
verb_init (int argc, char **argv)
{
  g_autofree char *mode_arg = NULL;
  const GOptionEntry entries[] = {
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_arg,
      "Boot configuration mode for an empty boot directory: symlink or exchange (default: what "
      "the filesystem supports)",
      "MODE" },
    { NULL },
  };
  if (!cli_parse_options ("init", NULL, "Create the state layout and an empty boot configuration.",
                          entries, &argc, &argv))
    return EXIT_USAGE;
  BootMode mode = BOOT_MODE_NONE;
  if (g_strcmp0 (mode_arg, "symlink") == 0)
    mode = BOOT_MODE_SYMLINK;
  else if (g_strcmp0 (mode_arg, "exchange") == 0)
    mode = BOOT_MODE_EXCHANGE;
  else if (mode_arg != NULL)
    return cli_usage_error ("init", "unknown --mode \"%s\" (symlink or exchange)", mode_arg);
  if (argc > 1)
    return cli_usage_error ("init", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  /* Image builds start from an empty directory: create it. */
  if (cli_globals.sysroot && g_mkdir_with_parents (cli_globals.sysroot, 0755) < 0)
    {
      int errsv = errno;
      fprintf (stderr, "stagehand: creating sysroot %s: %s\n", cli_globals.sysroot,
               g_strerror (errsv));
      return EXIT_FAILURE;
    }
  if (!cli_open_sysroot (NULL, -1, CLI_LOCK_TIMEOUT_CONF, FALSE, &sysroot, &error))
    return cli_fail (error);
  if (!sysroot_init (sysroot, mode, sysroot->config->lock_timeout, cli_report_lock_wait, "init",
                     &error))
    {
      cli_explain_lock_timeout (error, sysroot, CLI_LOCK_TIMEOUT_CONF);
      return cli_fail (error);
    }
  g_autofree char *text
      = g_strdup_printf ("Initialised %s (boot directory %s)\n", sysroot->path, sysroot->boot_path);
  cli_report ("init", text, "sysroot", sysroot->path, "boot", sysroot->boot_path, NULL);
  return 0;
}

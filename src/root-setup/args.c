/* The root setup's own command line:
 *   stagehand-root-setup [--cmdline=FILE] [--run-dir=DIR] ROOT
 * Kept apart from main() so that the unit tests can call it. */
#include "root-setup.h"

#include <string.h>

static const char *
option_value (const char *arg, const char *name)
{
  size_t len = strlen (name);
  if (strncmp (arg, name, len) == 0 && arg[len] == '=')
    return arg + len + 1;
  return NULL;
}

const char *
root_setup_parse_args (int argc, char **argv, RootSetupArgs *ret_args, const char **ret_bad)
{
  RootSetupArgs args = {
    .cmdline_path = ROOT_SETUP_DEFAULT_CMDLINE,
    .run_dir = ROOT_SETUP_DEFAULT_RUN_DIR,
  };
  *ret_bad = NULL;
  bool options_done = false;
  for (int i = 1; i < argc; i++)
    {
      const char *arg = argv[i], *v;
      if (!options_done && strcmp (arg, "--") == 0)
        options_done = true;
      else if (!options_done && (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0))
        args.help = true;
      else if (!options_done && (v = option_value (arg, "--cmdline")) != NULL)
        {
          if (*v == '\0')
            return *ret_bad = arg, "empty file name";
          args.cmdline_path = v;
        }
      else if (!options_done && (v = option_value (arg, "--run-dir")) != NULL)
        {
          if (v[0] != '/')
            return *ret_bad = arg, "the run directory must be an absolute path";
          args.run_dir = v;
        }
      else if (!options_done && arg[0] == '-')
        return *ret_bad = arg, "unknown option";
      else if (args.root != NULL)
        return *ret_bad = arg, "unexpected argument";
      else
        args.root = arg;
    }
  if (args.help)
    {
      *ret_args = args;
      return NULL;
    }
  if (args.root == NULL)
    return "missing ROOT (where the physical root is mounted, e.g. /root or /sysroot)";
  /* ROOT names a mount the program moves; a relative one would depend on
   * the initramfs's working directory, and "/" cannot be moved at all. */
  if (args.root[0] != '/')
    return *ret_bad = args.root, "ROOT must be an absolute path";
  if (args.root[strspn (args.root, "/")] == '\0')
    return *ret_bad = args.root, "ROOT cannot be /";
  *ret_args = args;
  return NULL;
}

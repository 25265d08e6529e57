/* stagehand: image-based OS updates made safe at shutdown.
 *
 *   stagehand [--sysroot=DIR] [--boot=DIR] [--json] [-v] VERB [ARGS]
 */
#include "config.h"

#include "cli.h"
#include "verbs.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} Verb;

#ifdef STAGEHAND_FRONT
/* The installed `stagehand`: finalize-staged alone, linked without the
 * libraries only other verbs need (libarchive, json-glib), so that the
 * process holding /boot from stage to shutdown stays small and a finalize
 * starts fast. Every other verb (and --help, --version) is handed to
 * stagehand-tool, the full CLI built from this file too. */
static const Verb verbs[] = {
  { "finalize-staged", verb_finalize_staged,
    "Make the staged deployment the default (--hold: at SIGTERM)" },
};

/* Replaces this process with stagehand-tool (same pid, same arguments):
 * next to this executable when run from a build tree, else in the libexec
 * directory of the install tree this executable is in (wherever that tree
 * now is), else in the configured one. Returns the exit status for when
 * none can be executed. */
static int
exec_full_tool (char **argv)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = self ? g_path_get_dirname (self) : NULL;
  g_autofree char *sibling = dir ? g_build_filename (dir, "stagehand-tool", NULL) : NULL;
#ifdef STAGEHAND_LIBEXECDIR_FROM_BINDIR
  g_autofree char *relative
      = dir ? g_build_filename (dir, STAGEHAND_LIBEXECDIR_FROM_BINDIR, "stagehand-tool", NULL)
            : NULL;
#else
  const char *relative = NULL;
#endif
  const char *candidates[] = { sibling, relative, STAGEHAND_LIBEXECDIR "/stagehand-tool" };
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != NULL)
      execv (candidates[i], argv); /* returns only on failure */
  cli_print_error ("cannot run %s, which has every verb but finalize-staged: %s",
                   candidates[G_N_ELEMENTS (candidates) - 1], g_strerror (errno));
  return EXIT_FAILURE;
}
#else
static const Verb verbs[] = {
  { "init", verb_init, "Create the state layout (idempotent)" },
  { "stage", verb_stage, "Stage an image to become the default at the next shutdown" },
  { "unstage", verb_unstage, "Drop the staged deployment" },
  { "status", verb_status, "Show deployments, the boot configuration and the last finalize" },
  { "finalize-staged", verb_finalize_staged,
    "Make the staged deployment the default (--hold: at SIGTERM)" },
  { "deploy", verb_deploy, "Stage and finalize now (image building, first install)" },
  { "rollback", verb_rollback, "Make the previous deployment the default" },
  { "cleanup", verb_cleanup, "Remove deployments and boot files nothing refers to" },
  { "config-diff", verb_config_diff, "List the /etc changes a finalize would carry" },
};
#endif

static void
print_help (FILE *f)
{
  fprintf (f, "Usage: stagehand [--sysroot=DIR] [--boot=DIR] [--json] [-v] VERB [ARGS]\n\n");
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++)
    fprintf (f, "  %-16s %s\n", verbs[i].name, verbs[i].summary);
  fprintf (f, "\nSee 'stagehand VERB --help' for a verb's options.\n");
}

/* The index of the verb in argv: the first argument that is not an option
 * or the value of a global option given as "--sysroot DIR". */
static int
find_verb (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--sysroot") == 0 || strcmp (argv[i], "--boot") == 0)
        i++;
      else if (argv[i][0] != '-')
        return i;
    }
  return -1;
}

int
main (int argc, char **argv)
{
  /* Before anything else, and before any library can start a thread that
   * would inherit an unblocked mask: finalize-staged --hold waits for these
   * with sigwait(), and no signal handler ever runs (see docs/design.md:
   * a SIGTERM handler calling syslog() deadlocked a mail server). Every
   * other verb gets them back once its options are parsed (cli.c). */
  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &mask, NULL);
  /* A signal ignored by whoever started us (SIGINT in a shell's background
   * job) is discarded before sigwait() can see it: give all three their
   * default disposition back. A zeroed sigaction is SIG_DFL, not a handler. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember (&mask, sig) == 1)
      (void)sigaction (sig, &(struct sigaction){ 0 }, NULL); /* cannot fail for these */

  g_set_prgname ("stagehand");

  int vi = find_verb (argc, argv);
#ifdef STAGEHAND_FRONT
  if (vi < 0 || strcmp (argv[vi], "finalize-staged") != 0)
    return exec_full_tool (argv);
#endif
  if (vi < 0)
    {
      for (int i = 1; i < argc; i++)
        {
          if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
            {
              print_help (stdout);
              return 0;
            }
          if (strcmp (argv[i], "--version") == 0)
            {
              printf ("stagehand %s\n", PACKAGE_VERSION);
              return 0;
            }
        }
      fprintf (stderr, "stagehand: no verb given (see 'stagehand --help')\n");
      return EXIT_USAGE;
    }

  const Verb *verb = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strcmp (verbs[i].name, argv[vi]) == 0)
      verb = &verbs[i];
  if (verb == NULL)
    {
      cli_print_error ("unknown verb \"%s\" (see 'stagehand --help')", argv[vi]);
      return EXIT_USAGE;
    }

  /* The signals stay blocked until the verb's options are parsed: only
   * then is it known, wherever --hold stood, whether this is the holding
   * finalizer (cli_parse_options_full()). */
  /* The verb sees "stagehand VERB" as its program name and every other
   * argument, so global options work before and after the verb. */
  g_autofree char *prgname = g_strdup_printf ("stagehand %s", verb->name);
  g_autofree char **vargv = g_new0 (char *, argc + 1);
  int vargc = 0;
  vargv[vargc++] = prgname;
  for (int i = 1; i < argc; i++)
    if (i != vi)
      vargv[vargc++] = argv[i];
  return verb->run (vargc, vargv);
}

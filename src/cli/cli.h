/* What the verb files share: global options, opening the sysroot with the
 * lock, and turning an error into one line on stderr and an exit status. */
#pragma once

#include <glib.h>

#include "sysroot.h"

G_BEGIN_DECLS

#define EXIT_USAGE 2
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL: the sysroot lock could not be taken in time */

typedef struct
{
  char *sysroot;
  char *boot;
  gboolean json;
  gboolean verbose;
} CliGlobals;

extern CliGlobals cli_globals;

/* Parses a verb's options (@entries, may be NULL) plus the global ones.
 * @params describes the positional arguments for --help. On a usage error,
 * prints one line and returns FALSE; the verb returns EXIT_USAGE. */
gboolean cli_parse_options (const char *verb, const char *params, const char *summary,
                            const GOptionEntry *entries, int *argc, char ***argv);

/* cli_parse_options(), for the verb that may wait for signals: main blocks
 * SIGTERM, SIGINT and SIGHUP before anything else, and parsing unblocks
 * them unless @keep_signals_blocked (an option's value, may be NULL) is
 * TRUE once every option, before or after the verb, has been read. */
gboolean cli_parse_options_full (const char *verb, const char *params, const char *summary,
                                 const GOptionEntry *entries, const gboolean *keep_signals_blocked,
                                 int *argc, char ***argv);

/* Prints "stagehand: <message>" as exactly one line on stderr: control
 * characters in the message (from a path, an option value) show escaped. */
void cli_print_error (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

/* Prints "stagehand: <verb>: <message>" for a usage error and returns EXIT_USAGE. */
int cli_usage_error (const char *verb, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Prints what a verb did: @text as it is, or with --json one object
 * {"version": 1, "verb": @verb, KEY: VALUE, ...} from the key/value string
 * pairs that follow (a NULL value is null), ended by a NULL key. */
void cli_report (const char *verb, const char *text, ...) G_GNUC_NULL_TERMINATED;

/* Prints a JSON document (@text, with its final newline) on stdout, as
 * valid UTF-8: every byte of @text that is not part of a valid UTF-8
 * sequence is replaced by U+FFFD. Every JSON output goes through here. */
void cli_print_json (const char *text);

/* Appends @s to @out as a JSON string literal. */
void cli_json_append_string (GString *out, const char *s);

/* Prints the error once and returns the exit status it calls for. */
int cli_fail (GError *error);

/* Where the lock timeout of a verb is set, for the message when it runs out. */
typedef enum
{
  CLI_LOCK_TIMEOUT_CONF,       /* lock-timeout= in stagehand.conf only */
  CLI_LOCK_TIMEOUT_FLAG,       /* the verb's --lock-timeout (over lock-timeout=) */
  CLI_LOCK_TIMEOUT_FLAG_UNSET, /* a verb with --lock-timeout, run without it */
  CLI_LOCK_TIMEOUT_FINALIZE,   /* finalize-lock-timeout= in stagehand.conf */
} CliLockTimeoutSource;

/* Opens the sysroot of the global options; with @operation, takes the lock
 * for it (waiting at most @lock_timeout seconds, -1 = the configured
 * default; @source says where that is set) and loads the state. */
gboolean cli_open_sysroot (const char *operation, int lock_timeout, CliLockTimeoutSource source,
                           gboolean load, Sysroot **ret_sysroot, GError **error);

/* On a lock timeout, appends to @error's message where the timeout that ran
 * out is set, so the fix is one step away: "(see --lock-timeout)" only for
 * the verbs that have that flag. Other errors are left as they are. */
void cli_explain_lock_timeout (GError *error, const Sysroot *sysroot, CliLockTimeoutSource source);

/* Tells the user who holds the lock while waiting (a LockWaitFunc). */
void cli_report_lock_wait (const LockHolder *holder, guint64 waited_usec, gpointer user_data);

G_END_DECLS

G_BEGIN_DECLS

/* Options shared by `stage` and `deploy`. */
typedef struct
{
  char *os;
  char **kargs;
  int lock_timeout; /* -1: the configured default */
  gboolean no_start;
  gboolean mark_pending;             /* StageOptions.mark_pending: `stage`, not `deploy` */
  struct CliProgressFd *progress_fd; /* --progress-fd, or NULL */
} CliStageOptions;

/* Adds the shared stage options to a verb's entries. */
#define CLI_STAGE_OPTION_ENTRIES(opts)                                                             \
  { "os",  0, 0, G_OPTION_ARG_STRING, &(opts).os, "OS name (default: the image's os-release ID)",  \
    "NAME" },                                                                                      \
      { "karg",                                                                                    \
        0,                                                                                         \
        0,                                                                                         \
        G_OPTION_ARG_STRING_ARRAY,                                                                 \
        &(opts).kargs,                                                                             \
        "Kernel argument to add or replace (repeatable)",                                          \
        "ARG" },                                                                                   \
  {                                                                                                \
    "lock-timeout", 0, 0, G_OPTION_ARG_INT, &(opts).lock_timeout,                                  \
        "Seconds to wait for the sysroot lock", "SEC"                                              \
  }

/* Checks --os and --karg; on a bad value prints one usage line and returns
 * EXIT_USAGE, else 0. */
int cli_check_stage_options (const char *verb, const CliStageOptions *opts);

/* Opens and locks the sysroot and stages @image; prints progress on a
 * terminal. Returns "<os>/<id>", the open, locked, loaded sysroot, and how
 * many device nodes under the image's /dev were skipped. */
gboolean cli_stage (const char *operation, const char *image, const CliStageOptions *opts,
                    Sysroot **ret_sysroot, char **ret_deployment, guint64 *ret_devices_skipped,
                    GError **error);

/* The line stage and deploy add when device nodes were skipped, or "". */
char *cli_devices_skipped_line (guint64 devices_skipped);

G_END_DECLS

#include "config.h"

#include "cli.h"
#include "errors.h"
#include "journal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

CliGlobals cli_globals;

static const GOptionEntry global_entries[]
    = { { "sysroot", 0, 0, G_OPTION_ARG_FILENAME, &cli_globals.sysroot,
          "Sysroot (default: /, or /sysroot when booted into a deployment)", "DIR" },
        { "boot", 0, 0, G_OPTION_ARG_FILENAME, &cli_globals.boot,
          "Boot directory (default: SYSROOT/boot, or /boot when booted into a deployment)", "DIR" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &cli_globals.json, "Print JSON", NULL },
        { "verbose", 'v', 0, G_OPTION_ARG_NONE, &cli_globals.verbose, "Say more", NULL },
        { NULL } };

void
cli_print_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  /* An error is one line, whatever it quotes: a path or an option value
   * with a newline in it would split it, so control characters show
   * escaped. */
  g_autoptr (GString) line = g_string_new ("stagehand: ");
  for (const guchar *p = (const guchar *)msg; *p; p++)
    {
      if (*p == '\n')
        g_string_append (line, "\\n");
      else if (*p < 0x20 || *p == 0x7f)
        g_string_append_printf (line, "\\x%02x", *p);
      else
        g_string_append_c (line, *p);
    }
  g_string_append_c (line, '\n');
  fputs (line->str, stderr);
}

int
cli_usage_error (const char *verb, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  cli_print_error ("%s: %s (see 'stagehand %s --help')", verb, msg, verb);
  return EXIT_USAGE;
}

gboolean
cli_parse_options (const char *verb, const char *params, const char *summary,
                   const GOptionEntry *entries, int *argc, char ***argv)
{
  return cli_parse_options_full (verb, params, summary, entries, NULL, argc, argv);
}

gboolean
cli_parse_options_full (const char *verb, const char *params, const char *summary,
                        const GOptionEntry *entries, const gboolean *keep_signals_blocked,
                        int *argc, char ***argv)
{
  g_autofree char *title
      = g_strdup_printf ("%s%s%s", verb, params ? " " : "", params ? params : "");
  g_autoptr (GOptionContext) ctx = g_option_context_new (title);
  g_option_context_set_summary (ctx, summary);
  if (entries)
    g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, global_entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, argc, argv, &error))
    {
      cli_usage_error (verb, "%s", error->message);
      return FALSE;
    }
  if (cli_globals.verbose)
    log_set_stderr_level (LOG_INFO);
  /* Decided from the parsed value, not by looking for "--hold" in argv:
   * an option means the same wherever it stands (issue 14: with --hold
   * before the verb the signals stayed unblocked, and the first SIGTERM
   * killed the finalizer). Every other verb is safe to interrupt: all its
   * state changes are atomic. */
  if (keep_signals_blocked == NULL || !*keep_signals_blocked)
    {
      sigset_t mask;
      sigemptyset (&mask);
      sigaddset (&mask, SIGTERM);
      sigaddset (&mask, SIGINT);
      sigaddset (&mask, SIGHUP);
      pthread_sigmask (SIG_UNBLOCK, &mask, NULL);
    }
  return TRUE;
}

void
cli_json_append_string (GString *out, const char *s)
{
  if (s == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *)s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (out, "\\%c", *p);
      else if (*p < 0x20)
        g_string_append_printf (out, "\\u%04x", *p);
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
}

void
cli_print_json (const char *text)
{
  /* JSON text is UTF-8 (RFC 8259), but what stagehand reports is not
   * always: another tool's entry may have any bytes in its title or file
   * name, and a path any bytes in its names (issue 14). Each byte that is
   * not part of a valid UTF-8 sequence becomes U+FFFD, here, for every
   * document: the structure is ASCII, so only string contents change, and
   * no escape of ours can be mistaken for the text it replaced. */
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  fputs (valid, stdout);
}

/* Kept free of json-glib: the finalize-only binary prints results too. */
void
cli_report (const char *verb, const char *text, ...)
{
  if (!cli_globals.json)
    {
      fputs (text, stdout);
      return;
    }
  g_autoptr (GString) out = g_string_new ("{\"version\": 1, \"verb\": ");
  cli_json_append_string (out, verb);
  va_list ap;
  va_start (ap, text);
  for (const char *key = va_arg (ap, const char *); key != NULL; key = va_arg (ap, const char *))
    {
      const char *value = va_arg (ap, const char *);
      g_string_append (out, ", ");
      cli_json_append_string (out, key);
      g_string_append (out, ": ");
      cli_json_append_string (out, value);
    }
  va_end (ap);
  g_string_append (out, "}\n");
  cli_print_json (out->str);
}

int
cli_fail (GError *error)
{
  cli_print_error ("%s", error->message);
  if (g_error_matches (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_TIMEOUT))
    return EXIT_TEMPFAIL;
  return EXIT_FAILURE;
}

void
cli_report_lock_wait (const LockHolder *holder, guint64 waited_usec, gpointer user_data)
{
  g_autofree char *who = lock_holder_describe (holder);
  LogFields f = { .message_id = MESSAGE_ID_LOCK_WAIT, .step = user_data };
  log_event (LOG_NOTICE, &f, "waiting for the sysroot lock (%u s so far): held by %s",
             (guint)(waited_usec / G_USEC_PER_SEC), who);
  /* Without a journal log_event already printed to stderr. */
  if (log_journal_available ())
    fprintf (stderr, "stagehand: waiting for the sysroot lock (%u s so far): held by %s\n",
             (guint)(waited_usec / G_USEC_PER_SEC), who);
}

void
cli_explain_lock_timeout (GError *error, const Sysroot *sysroot, CliLockTimeoutSource source)
{
  if (!g_error_matches (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_TIMEOUT))
    return;
  g_autofree char *hint = NULL;
  g_autofree char *conf = g_build_filename (sysroot->path, STATE_DIR, CONFIG_FILE, NULL);
  switch (source)
    {
    case CLI_LOCK_TIMEOUT_FLAG:
      hint = g_strdup ("--lock-timeout");
      break;
    case CLI_LOCK_TIMEOUT_FLAG_UNSET:
      hint = g_strdup_printf ("--lock-timeout, or lock-timeout= in %s", conf);
      break;
    case CLI_LOCK_TIMEOUT_CONF:
      hint = g_strdup_printf ("lock-timeout= in %s", conf);
      break;
    case CLI_LOCK_TIMEOUT_FINALIZE:
      hint = g_strdup_printf ("finalize-lock-timeout= in %s", conf);
      break;
    }
  char *message = g_strdup_printf ("%s (see %s)", error->message, hint);
  g_free (error->message);
  error->message = message;
}

gboolean
cli_open_sysroot (const char *operation, int lock_timeout, CliLockTimeoutSource source,
                  gboolean load, Sysroot **ret_sysroot, GError **error)
{
  g_autoptr (Sysroot) sysroot = NULL;
  if (!sysroot_open (cli_globals.sysroot, cli_globals.boot, &sysroot, error))
    return FALSE;
  if (operation != NULL)
    {
      guint timeout = lock_timeout >= 0 ? (guint)lock_timeout : sysroot->config->lock_timeout;
      if (!sysroot_lock (sysroot, operation, timeout, cli_report_lock_wait, (gpointer)operation,
                         error))
        {
          if (error != NULL)
            cli_explain_lock_timeout (*error, sysroot,
                                      source == CLI_LOCK_TIMEOUT_FLAG && lock_timeout < 0
                                          ? CLI_LOCK_TIMEOUT_FLAG_UNSET
                                          : source);
          return FALSE;
        }
    }
  if (load && !sysroot_load (sysroot, error))
    return FALSE;
  *ret_sysroot = g_steal_pointer (&sysroot);
  return TRUE;
}

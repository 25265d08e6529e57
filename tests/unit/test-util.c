#include "config.h"

#include "test-util.h"

#include <stdarg.h>
#include <string.h>

void
test_report_failure (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_test_message ("FAIL: %s", msg);
  g_test_fail_printf ("%s", msg);
}

gboolean
test_mentions_word (const char *message, const char *word)
{
  gsize n = strlen (word);
  for (const char *p = strstr (message, word); p; p = strstr (p + 1, word))
    {
      gboolean start_ok
          = p == message || !(g_ascii_isalnum (p[-1]) || p[-1] == '-' || p[-1] == '_');
      gboolean end_ok = !(g_ascii_isalnum (p[n]) || p[n] == '-' || p[n] == '_');
      if (start_ok && end_ok)
        return TRUE;
    }
  return FALSE;
}

void
test_check_parse_error (const GError *error, StagehandError code, const char *what, const char *key)
{
  g_assert_nonnull (error);
  g_test_message ("%s: %s", key ? key : "(no key)", error->message);
  if (!g_error_matches (error, STAGEHAND_ERROR, code))
    test_report_failure ("\"%s\": expected STAGEHAND_ERROR %d, got %s %d", error->message, code,
                         g_quark_to_string (error->domain), error->code);
  if (strstr (error->message, what) == NULL)
    test_report_failure ("\"%s\" does not name the file %s", error->message, what);
  if (key && !test_mentions_word (error->message, key))
    test_report_failure ("\"%s\" does not name the key %s", error->message, key);
}

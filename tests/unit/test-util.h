/* What the parsers' unit tests share: non-fatal failures, so a table of
 * cases shows every wrong message and not only the first, and the checks
 * that a parse error names the file and the key. */
#pragma once

#include <glib.h>

#include "errors.h"

G_BEGIN_DECLS

/* Fails the test without stopping it, and logs why. */
void test_report_failure (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

/* TRUE if @word stands in @message as a word of its own: "id" is not
 * mentioned by "boot-id" or "invalid". */
gboolean test_mentions_word (const char *message, const char *word);

/* Checks a parser's error: a STAGEHAND_ERROR of @code whose message names
 * the file @what and, unless NULL, the key @key. Logs the message. */
void test_check_parse_error (const GError *error, StagehandError code, const char *what,
                             const char *key);

G_END_DECLS

/* The text both of stagehand's line formats are made of: the manifest
 * (manifest.c) and the /etc merge's state file (etc-tree.c). One set of
 * writers and parsers, so that a path, a hash or a number reads the same in
 * both. Not an API: the library's callers use manifest.h.
 */
#pragma once

#include <glib.h>

#include "manifest.h"

G_BEGIN_DECLS

/* @bytes escaped as a manifest path is (manifest.h): every byte outside
 * '!'..'~', and '\' itself, as \xNN. */
void manifest_text_append_escaped (GString *s, const char *bytes);

/* The MANIFEST_HASH_LEN bytes of @hash as lower-case hex digits, after
 * @sep unless @sep is '\0'. */
void manifest_text_append_hash (GString *s, char sep, const guint8 *hash);

/* @value in @base (8 or 10), at least @min_digits wide with leading zeros,
 * after @sep unless @sep is '\0'. printf costs more than everything else in
 * writing a manifest or a state file. */
void manifest_text_append_number (GString *s, char sep, guint64 value, guint base,
                                  guint min_digits);

/* A hash written by manifest_text_append_hash(): exactly 2 * MANIFEST_HASH_LEN
 * lower-case hex digits. */
gboolean manifest_text_parse_hash (const char *s, guint8 *ret_hash);

/* Splits @line in place at each space into at most @max fields; returns how
 * many. When it returns @max, the last field holds the rest of the line,
 * spaces and all. */
guint manifest_text_split (char *line, char **fields, guint max);

G_END_DECLS

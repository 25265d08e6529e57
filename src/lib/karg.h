/* Kernel arguments: validation, splitting and amending.
 *
 * An entry's options line is written verbatim into a boot entry file, so a
 * karg with a newline or other control character would inject lines into
 * the entry; such kargs are refused, never escaped.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The karg that names the deployment to boot: stagehand=/stagehand/deploy/<os>/<id>. */
#define KARG_DEPLOYMENT_KEY "stagehand"

/* Refuses empty kargs, control characters (newline, tab, DEL...), unbalanced
 * double quotes, whitespace outside double quotes and the reserved
 * stagehand= karg. */
gboolean karg_validate (const char *karg, GError **error);

/* Splits an options line into kargs at whitespace outside double quotes. */
char **kargs_split (const char *options);

/* The key of a karg: the part before '=', or all of it. */
char *karg_key (const char *karg);

/* Amends @base with @amend: a karg in @amend replaces every karg of @base
 * with the same key, others are appended in order. stagehand= kargs of
 * @base are dropped. */
char **kargs_amend (char *const *base, char *const *amend);

G_END_DECLS

/* os-release(5) parsing: the image's identity, entry title and version. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *id;          /* ID=, lower-case [a-z0-9._-]; never NULL after parsing */
  char *pretty_name; /* PRETTY_NAME=, or NAME= VERSION=, or "Linux" */
  char *version_id;  /* VERSION_ID=, NULL if absent */
  char *version;     /* VERSION=, NULL if absent */
} OsRelease;

void os_release_free (OsRelease *osr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (OsRelease, os_release_free)

/* Parses os-release text: KEY=value lines, values optionally in single or
 * double quotes with backslash escapes, '#' comments. @origin names the file
 * in errors. A missing ID is "linux" as os-release(5) says. */
gboolean os_release_parse (const char *contents, const char *origin, OsRelease **ret_osr,
                           GError **error);

/* Reads usr/lib/os-release, or etc/os-release, below @tree_dfd. */
gboolean os_release_load (int tree_dfd, OsRelease **ret_osr, GError **error);

/* TRUE if @name is usable as an os name: non-empty, at most 64 of
 * [a-z0-9._-], not starting with '.' or '-'. It becomes a directory and a
 * file name component, so nothing else is accepted. */
gboolean os_name_is_valid (const char *name);

G_END_DECLS

/* Boot Loader Specification type #1 entries: parsing, writing, ordering.
 *
 * Ordering follows what systemd-boot applies (and what GRUB's blscfg
 * approximates): entries with a sort-key first, ordered by sort-key, then
 * machine-id, then version descending; then by file name descending; version
 * comparison is the UAPI.10 one. The first entry is the default.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* File names of the entries stagehand writes start with this; any other
 * entry belongs to another tool and is carried over unchanged. */
#define BOOT_ENTRY_PREFIX "stagehand-"

/* Every stagehand entry carries this sort-key. It starts with digits so it
 * sorts before the os-release IDs other tools use as sort-key ("debian",
 * "fedora"), which keeps stagehand's default first even when foreign
 * entries are carried along. */
#define BOOT_ENTRY_SORT_KEY "00-stagehand"

typedef struct
{
  char *filename; /* "<name>.conf", no directory */
  char *title;
  char *version;
  char *sort_key;
  char *machine_id;
  char *linux_path;
  char **initrds; /* zero or more initrd lines, NULL-terminated */
  char *options;  /* all options lines joined by a space */
  char *raw;      /* the file as read, up to a NUL */
  gsize raw_len;  /* raw's length */
} BootEntry;

void boot_entry_free (BootEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BootEntry, boot_entry_free)

/* Parses entry text. Fails (STAGEHAND_ERROR_CORRUPT) on lines that are not
 * "key value" and on a stagehand entry without linux or options. */
gboolean boot_entry_parse (const char *filename, const char *contents, BootEntry **ret_entry,
                           GError **error);

/* The text of a stagehand entry; for a foreign entry, its raw text. */
char *boot_entry_to_data (const BootEntry *entry);

/* TRUE if stagehand wrote this entry (by its file name). */
gboolean boot_entry_is_ours (const BootEntry *entry);

/* The value of the stagehand= karg in the entry's options, or NULL. */
char *boot_entry_get_deployment (const BootEntry *entry);

/* qsort-style comparison: negative if @a comes before @b in the menu. */
int boot_entry_compare (const BootEntry *a, const BootEntry *b);

/* Sorts a GPtrArray of BootEntry* into menu order (default first). */
void boot_entries_sort (GPtrArray *entries);

/* UAPI.10 version comparison (as systemd's strverscmp_improved): negative
 * if @a is older than @b. NULL sorts before anything. */
int version_compare (const char *a, const char *b);

G_END_DECLS

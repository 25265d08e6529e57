/* Boot Loader Specification type #1 entries: parsing, writing, ordering,
 * and the boot counters of automatic boot assessment in their file names.
 *
 * Ordering follows what systemd-boot applies (and what GRUB's blscfg
 * approximates): entries with no boot tries left last; then entries with a
 * sort-key first, ordered by sort-key, then machine-id, then version
 * descending; then by identity (the file name without its boot counter)
 * descending; then more tries left, then fewer tries done. Version
 * comparison is the UAPI.10 one. The first entry is the default.
 *
 * Boot counters (https://uapi-group.org/specifications/specs/boot_loader_specification/,
 * "Boot counting"; systemd's automatic boot assessment): an entry file
 * named "<name>+LEFT[-DONE].conf" has LEFT tries left and DONE tries done.
 * systemd-boot renames it before each attempt (+3 -> +2-1 -> +1-2 ->
 * +0-3) and systemd-bless-boot removes the counter once the boot is
 * good. The entry's identity is "<name>.conf", whatever its counter: that
 * is what systemd-boot reports in LoaderEntrySelected and sorts by. Every
 * caller asks this file for it; nobody strips "+N-M" by hand elsewhere.
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

/* The boot counter of an entry file name. */
typedef struct
{
  char *text;     /* "+LEFT[-DONE]" as written (digit widths kept), NULL: no counter */
  int tries_left; /* -1 without a counter */
  int tries_done; /* 0 without a counter or a DONE part */
} BootCounter;

void boot_counter_clear (BootCounter *counter);

typedef struct
{
  char *filename; /* "<name>[+LEFT[-DONE]].conf", no directory: the file as it is named now */
  char *id;       /* "<name>.conf": the file name without its boot counter, the identity */
  BootCounter counter;
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

/* An empty entry named @filename (its identity and counter read from it). */
BootEntry *boot_entry_new (const char *filename);

void boot_entry_free (BootEntry *entry);

/* Splits an entry file name into its identity (the name without the boot
 * counter: "a+3.conf" -> "a.conf") and its counter, as systemd-boot does:
 * the counter is the part from the last '+' to the ".conf" suffix (or the
 * end of the name), "+LEFT" or "+LEFT-DONE" in decimal digits. A name
 * without one that parses ("a+b.conf", "a+3x.conf") has no counter and is
 * its own identity. @ret_counter may be NULL. */
char *boot_entry_name_split (const char *filename, BootCounter *ret_counter);

/* The file name for identity @id ("<name>.conf") with the counter @counter
 * ("+LEFT[-DONE]", NULL: none). */
char *boot_entry_name_join (const char *id, const char *counter);

/* TRUE when the two names (file names or identities, with or without a
 * counter) name the same entry. Case does not matter: the ESP is vfat, and
 * older systemd-boot reports identities in lower case. */
gboolean boot_entry_name_equal (const char *a, const char *b);

/* The counter text for a new entry with @tries tries: "+3". */
char *boot_counter_new_text (guint tries);

/* Gives @entry the counter @counter ("+LEFT[-DONE]" as boot_entry_name_split
 * reads it; NULL: none): renames ->filename, sets ->counter. */
void boot_entry_set_counter (BootEntry *entry, const char *counter);

/* Boot counters through a rewrite: each of @entries (a new set of
 * stagehand entries, the new default first) gets the counter, as written
 * (digit widths too), of the first entry of @live (the live set, in menu
 * order) that names the same deployment (stagehand=). The new default, when
 * no live entry names it, gets @tries fresh tries (0: none); the others
 * without a live entry get none. */
void boot_entries_carry_counters (GPtrArray *entries, GPtrArray *live, guint tries);

/* TRUE when the entry's counter says it has no tries left ("+0", "+0-3"):
 * the boot loader tried it until the tries ran out, and now sorts it last. */
gboolean boot_entry_is_exhausted (const BootEntry *entry);
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

/* The same, ignoring boot counters: the order the entries were written in,
 * before the boot loader's assessment moved an entry with no tries left. */
int boot_entry_compare_as_written (const BootEntry *a, const BootEntry *b);

/* Sorts a GPtrArray of BootEntry* into menu order (default first). */
void boot_entries_sort (GPtrArray *entries);

/* UAPI.10 version comparison (as systemd's strverscmp_improved): negative
 * if @a is older than @b. NULL sorts before anything. */
int version_compare (const char *a, const char *b);

G_END_DECLS

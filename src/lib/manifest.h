/* <sysroot>/stagehand/deploy/<os>/<id>.manifest: what each regular file of
 * a deployment tree is (size, mode, owner, mtime, a hash of its extended
 * attributes and of its content), written when the deployment is staged so
 * that the next stage can decide which files it may share (hard-link)
 * without reading the old tree again. See docs/design.md, "Deduplication".
 *
 * The file is gzip-compressed text (`zcat` shows it; uncompressed text is
 * read too), one file per line, sorted by path:
 *
 *   stagehand-manifest 1
 *   <path> <size> <mode> <uid> <gid> <mtime-sec>.<mtime-nsec> <xattr-hash> <content-hash>
 *
 * <path> is the normalized path inside the tree with every byte outside
 * '!'..'~', and '\' itself, written as \xNN, so any byte string (spaces,
 * newlines, names that are not UTF-8) round-trips. <mode> is octal
 * permission bits (07777); hashes are 32 lower-case hex digits of XXH3-128.
 *
 * Version 2 (the header "stagehand-manifest 2", written only when there is
 * such an entry) adds directories and symbolic links, which stage records for
 * etc/ so that the image's pristine /etc is known to the next /etc merge
 * (etc-merge.h, docs/design.md "/etc across updates"):
 *
 *   <path> d <mode> <uid> <gid> <xattr-hash>
 *   <path> l <uid> <gid> <xattr-hash> <target>
 *
 * <target> is escaped like <path>. Version 1 files are read as before.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MANIFEST_HASH_LEN 16

typedef enum
{
  MANIFEST_TYPE_FILE = 0, /* the only type of version 1 and of deduplication */
  MANIFEST_TYPE_DIR,
  MANIFEST_TYPE_SYMLINK,
} ManifestType;

typedef struct
{
  const char *path; /* normalized ("usr/bin/ls"), raw bytes; owned by the manifest */
  ManifestType type;
  const char *target; /* MANIFEST_TYPE_SYMLINK only; owned by the manifest */
  guint64 size;
  guint32 mode; /* permission bits, including setuid/setgid/sticky */
  guint32 uid;
  guint32 gid;
  gint64 mtime_sec;
  guint32 mtime_nsec;
  guint8 xattr_hash[MANIFEST_HASH_LEN];   /* XXH3-128 of the sorted extended attributes */
  guint8 content_hash[MANIFEST_HASH_LEN]; /* XXH3-128 of the content (holes read as zeros) */
} ManifestEntry;

typedef struct _Manifest Manifest;

Manifest *manifest_new (void);
void manifest_free (Manifest *manifest);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Manifest, manifest_free)

/* Adds a copy of @entry, replacing any entry with the same path. */
void manifest_set (Manifest *manifest, const ManifestEntry *entry);

/* NULL if @path has no entry. */
const ManifestEntry *manifest_lookup (const Manifest *manifest, const char *path);

/* Calls @func for every entry, in no particular order. */
void manifest_foreach (const Manifest *manifest,
                       void (*func) (const ManifestEntry *entry, gpointer user_data),
                       gpointer user_data);

guint manifest_count (const Manifest *manifest);

/* TRUE if everything but the path is equal. */
gboolean manifest_entry_equal (const ManifestEntry *a, const ManifestEntry *b);

/* The text. */
char *manifest_to_data (const Manifest *manifest, gsize *ret_len);

/* What <id>.manifest holds: the text, gzip-compressed (a fifth of the size
 * on a real root filesystem: each deployment pays for its manifest). NULL
 * when the text is larger than a manifest may be read back (1 GiB, some
 * seven million files): such a tree gets no manifest, and shares nothing. */
char *manifest_to_file_data (const Manifest *manifest, gsize *ret_len);

/* Parses and validates the text or its gzip compression; @what names the file in errors
 * (STAGEHAND_ERROR_CORRUPT). */
gboolean manifest_parse (const char *data, gsize len, const char *what, Manifest **ret_manifest,
                         GError **error);

/* Reads and parses @name below @dfd; *ret_manifest = NULL when it does not
 * exist (a deployment staged before manifests existed). */
gboolean manifest_load_at (int dfd, const char *name, Manifest **ret_manifest, GError **error);

/* The path as it appears in the file, and back. */
char *manifest_escape_path (const char *path);
gboolean manifest_unescape_path (const char *escaped, char **ret_path);

G_END_DECLS

/* The /etc merge: a three-way merge of the booted deployment's pristine
 * /etc (its image's, from its manifest), the running /etc and the new
 * deployment's pristine /etc, into the new deployment's etc/. Planned
 * first (etc_merge_plan, pure), then applied (etc_merge_apply), like
 * bubblewrap plans its mounts. See docs/design.md, "/etc across updates".
 *
 * The rule: a path the running system changed (content, type, mode, owner,
 * symlink target, xattrs), added or removed relative to the pristine /etc
 * is carried into the new /etc; every other path takes the new image's
 * version. A conflict (the new image changed the same path too) never
 * fails: the local version wins and the new image's version is kept beside
 * it as <path>.stagehand-new (not for a directory both sides kept as a
 * directory: its entries are merged one by one). Sockets, FIFOs and device
 * nodes in the running /etc are not carried.
 *
 * Paths are relative to etc/ ("ssh/sshd_config"), raw bytes.
 */
#pragma once

#include <glib.h>

#include "fsutil.h"
#include "manifest.h"

G_BEGIN_DECLS

#define ETC_MERGE_NEW_SUFFIX ".stagehand-new"
/* <sysroot>/stagehand/deploy/<os>/<id>.etc-state: what stage remembers */
#define ETC_STATE_SUFFIX ".etc-state"

/* One entry of an /etc: what the merge compares, and for the running /etc
 * the stat fields that tell, without reading it, whether it changed. */
typedef struct
{
  char *path;
  ManifestType type;
  guint32 mode, uid, gid;
  guint64 size;
  guint8 xattr_hash[MANIFEST_HASH_LEN];
  guint8 content_hash[MANIFEST_HASH_LEN]; /* regular files */
  char *target;                           /* symlinks */
  /* the running /etc only (0 otherwise) */
  guint64 ino;
  gint64 mtime_sec, ctime_sec;
  guint32 mtime_nsec, ctime_nsec;
} EtcEntry;

typedef struct _EtcTree EtcTree;

EtcTree *etc_tree_new (void);
void etc_tree_free (EtcTree *tree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EtcTree, etc_tree_free)

/* Takes a copy of @entry. */
void etc_tree_add (EtcTree *tree, const EtcEntry *entry);
const EtcEntry *etc_tree_lookup (const EtcTree *tree, const char *path);
guint etc_tree_count (const EtcTree *tree);

/* TRUE if @a and @b are the same version of a path (both may be NULL:
 * absent). Stat fields and mtimes are not compared. */
gboolean etc_entry_equal (const EtcEntry *a, const EtcEntry *b);

/* TRUE if both hold the same paths, each etc_entry_equal(). */
gboolean etc_tree_equal (const EtcTree *a, const EtcTree *b);

/* Reads the tree below @etc_dfd. Sockets, FIFOs and device nodes are left
 * out. A regular file whose inode, size, mode, owner, mtime and ctime are
 * those of its entry in @previous (may be NULL) keeps that entry's hashes
 * and is not read: how the finalize re-reads the running /etc with stat
 * only. @what names the tree in errors. */
gboolean etc_tree_scan (int etc_dfd, const char *what, const EtcTree *previous, EtcTree **ret_tree,
                        GError **error);

/* The entries of @tree into @manifest as "etc" (the directory itself,
 * @etc_dfd's metadata) and "etc/<path>": the record of a deployment's
 * pristine /etc. */
gboolean etc_tree_add_to_manifest (const EtcTree *tree, int etc_dfd, Manifest *manifest,
                                   GError **error);

/* The pristine /etc a manifest records; NULL when it records none (a
 * deployment staged before manifests had directories). */
EtcTree *etc_tree_from_manifest (const Manifest *manifest);

typedef enum
{
  ETC_TAKE_NEW, /* the new image's version (nothing to do at stage) */
  ETC_CARRY,    /* the running version (or its absence) */
  ETC_DROP,     /* below a path carried as absent or not a directory: gone */
} EtcDecision;

typedef struct
{
  char *path;
  char change; /* 'M', 'A', 'D' relative to the pristine /etc, or 0 */
  EtcDecision decision;
  gboolean conflict;
  gboolean new_beside; /* the new version kept as <path>.stagehand-new */
  const char *why;     /* the conflict, for people; static */
} EtcMergeItem;

typedef struct
{
  GPtrArray *items;    /* EtcMergeItem*, sorted by path: every path with a decision */
  GHashTable *by_path; /* path -> EtcMergeItem* */
  guint n_changes;     /* items with a change */
  guint n_conflicts;
} EtcMergePlan;

void etc_merge_plan_free (EtcMergePlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EtcMergePlan, etc_merge_plan_free)

/* Decides every path. @pristine NULL means unknown: then nothing counts as
 * removed, and every running path that differs from the new image's is
 * carried. */
EtcMergePlan *etc_merge_plan (const EtcTree *pristine, const EtcTree *running,
                              const EtcTree *new_tree);

/* Makes @new_etc_dfd what @plan says, reading running versions below
 * @running_etc_dfd (never written). New files are written as temp names in
 * @scratch_dfd, a directory on the same filesystem whose leftovers the
 * caller's cleanup removes, and renamed into place. @new_etc_dfd holds either the new
 * image's pristine /etc (@previous NULL: the stage) or what @previous
 * applied with @previous_running (the finalize: only the paths whose
 * running version or decision changed since are touched). Writes new
 * inodes only (temp + rename), never into an inode it did not create,
 * except a directory's metadata; no fsync (the caller syncs the
 * filesystem once). */
gboolean etc_merge_apply (int running_etc_dfd, int new_etc_dfd, int scratch_dfd,
                          const EtcMergePlan *plan, const EtcTree *running, const EtcTree *new_tree,
                          const EtcMergePlan *previous, const EtcTree *previous_running,
                          GError **error);

/* What stage remembers for the finalize, in <id>.etc-state: the three
 * trees, with the running /etc's stat fields. */
typedef struct
{
  EtcTree *pristine; /* NULL: unknown */
  EtcTree *running;
  EtcTree *new_tree;
} EtcMergeState;

void etc_merge_state_free (EtcMergeState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EtcMergeState, etc_merge_state_free)

char *etc_merge_state_to_data (const EtcMergeState *state, gsize *ret_len);
gboolean etc_merge_state_parse (const char *data, gsize len, const char *what,
                                EtcMergeState **ret_state, GError **error);

/* A path for people and JSON: "/etc/<path>" with bytes outside printable
 * ASCII written as \xNN (manifest_escape_path). */
char *etc_merge_display_path (const char *path);

G_END_DECLS

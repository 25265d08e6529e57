/* Importing an OS image (a directory tree or a tar archive) into a new,
 * immutable deployment tree.
 *
 * The tree is a faithful copy: owner, group, mode (incl. setuid/setgid/sticky),
 * timestamps, symlinks (dangling ones too, never followed), hard links inside
 * the image, sparse files, extended attributes including security.capability,
 * and file names that are not UTF-8, byte for byte.
 *
 * Hostile input is refused, not sanitised: `..` components, absolute paths,
 * a path through a symlink, hard links that leave the tree, device nodes
 * (except under the top-level dev/, where they are skipped and counted).
 * Everything is written relative to directory fds opened with O_NOFOLLOW.
 */
#pragma once

#include <glib.h>

#include "manifest.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 files;        /* entries written so far (files, dirs, links) */
  guint64 bytes;        /* file content bytes imported so far, written or shared */
  guint64 linked_files; /* regular files hard-linked from the reference tree */
  guint64 linked_bytes; /* their size */
  /* Device nodes under the image's top-level dev/, skipped (refused
   * anywhere else): /dev is a devtmpfs at boot. */
  guint64 devices_skipped;
  gboolean done; /* TRUE on the last call */
} ImportProgress;

typedef void (*ImportProgressFunc) (const ImportProgress *progress, gpointer user_data);

typedef struct
{
  /* Called after each entry and once at the end with done = TRUE; the
   * caller rate-limits what it shows. May be NULL. */
  ImportProgressFunc progress;
  gpointer progress_data;
  /* Deduplication (docs/design.md): a previous deployment tree, or -1, and
   * its manifest, or NULL. A regular file whose path, size, mode, owner,
   * mtime, extended attributes and content hash equal a manifest entry is
   * hard-linked from that tree instead of written. Both or nothing. */
  int reference_dfd;
  const Manifest *reference_manifest;
} ImportOptions;

#define IMPORT_OPTIONS_INIT                                                                        \
  {                                                                                                \
    .progress = NULL, .progress_data = NULL, .reference_dfd = -1, .reference_manifest = NULL       \
  }

/* Imports the image at @image_path into the directory @dest_name below
 * @dest_parent_dfd, which must not exist yet. @image_path is a directory, or
 * a file or FIFO read as a stream by libarchive (tar, optionally compressed
 * with anything libarchive reads). No fsync: the caller syncs the filesystem
 * once. On failure, whatever was created is removed again. */
gboolean image_import (const char *image_path, int dest_parent_dfd, const char *dest_name,
                       const ImportOptions *options, GError **error);

/* image_import() that also returns the manifest of the new tree (its
 * regular files with their metadata and content hashes), computed while the
 * files are read: the caller stores it beside the deployment. */
gboolean image_import_with_manifest (const char *image_path, int dest_parent_dfd,
                                     const char *dest_name, const ImportOptions *options,
                                     Manifest **ret_manifest, GError **error);

/* STAGEHAND_DEBUG_ONE_THREAD=1: a stage starts no threads (no import
 * workers, no flusher, no early syncfs) and does all of it on the calling
 * thread. For the fault-injection sweeps (tests/lib/fault-lib.sh): strace
 * counts calls per thread, and only a single-threaded stage has the same
 * Nth call in every run. */
gboolean import_on_one_thread (void);

G_END_DECLS

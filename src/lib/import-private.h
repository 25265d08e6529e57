/* Internals of image import, shared by its files: image-import.c (entry
 * points), tree-writer.c, tree-writer-file.c and tree-writer-workers.c (the
 * writer), import-dir.c and import-tar.c (the two sources), import-util.c.
 * Not an API: the library's callers use image-import.h.
 */
#pragma once

#include <glib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <xxhash.h>

#include "image-import.h"
#include "manifest.h"

G_BEGIN_DECLS

/* Reads from a tar stream and the fallback copy loop use buffers this large:
 * small reads dominate the cost of a compressed 350 MB image otherwise. */
#define IO_BUFFER_SIZE (1024 * 1024)

/* ---- shared helpers (import-util.c) ------------------------------------ */

char *import_escape_name (const char *name);
gboolean import_throw_entry (GError **error, const char *path, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);
gboolean import_throw_entry_errno (GError **error, const char *path, const char *what);
/* Adds `image entry "<path>": ` in front of an error from a content source. */
gboolean import_prefix_entry_error (GError **error, const char *path);
gboolean import_pwrite_all (int fd, const guint8 *buf, size_t len, off_t offset);
gboolean import_pread_all (int fd, guint8 *buf, size_t len, off_t offset);
ssize_t import_symlink_setxattr_at (int dfd, const char *name, const char *key, const void *value,
                                    size_t len);
ssize_t import_symlink_getxattr_at (int dfd, const char *name, const char *key, void *value,
                                    size_t len);
ssize_t import_symlink_listxattr_at (int dfd, const char *name, char *list, size_t len);
/* Through @fd when >= 0, else the symlink @name below @dfd (the calls
 * above). */
ssize_t import_listxattr (int fd, int dfd, const char *name, char *list, size_t len);
ssize_t import_getxattr (int fd, int dfd, const char *name, const char *key, void *value,
                         size_t len);

/* ---- content hashes (import-util.c) ----------------------------------- */

/* The content hash of a regular file: XXH3-128 over its logical content
 * (holes are zeros) cut into 4 KiB blocks, where each run of all-zero
 * blocks counts as one record, "Z" and the number of blocks, and each
 * other block is "D" and its bytes; then "S" and the size. It depends on
 * the content only, not on how a source stores it, so a sparse file hashes
 * the same from a directory and from a tar stream; and a hole costs one
 * record, not a pass over its zeros (the holes of a 10 KB tar claiming a
 * 64 GiB file used to cost 3.5 s of CPU under the lock; issue 14, item 6). */
#define CONTENT_HASH_BLOCK 4096

typedef struct
{
  XXH3_state_t *state;
  guint8 block[CONTENT_HASH_BLOCK];
  gsize fill;          /* bytes in block */
  guint64 zero_blocks; /* the run of all-zero blocks not yet recorded */
  guint64 size;
} ContentHash;

ContentHash *content_hash_new (void);
void content_hash_free (ContentHash *h);
void content_hash_reset (ContentHash *h);
void content_hash_update (ContentHash *h, const void *data, gsize len);
/* @len bytes of zeros, in time independent of @len (but for the partial
 * blocks at either end). */
void content_hash_zeros (ContentHash *h, guint64 len);
void content_hash_digest (ContentHash *h, guint8 *ret_digest);

/* The xattr hash of a manifest entry: XXH3-128 over the extended attributes
 * in name order, each recorded by xattr_hash_update() as its name, a NUL,
 * its length (64-bit little endian) and its value. The importer
 * (tree-writer-file.c) and the /etc merge (etc-tree.c) both hash this way:
 * a difference would make every entry look changed to the other. */
void xattr_hash_update (XXH3_state_t *hash, const char *name, const void *value, gsize len);

/* The MANIFEST_HASH_LEN bytes of @hash's XXH3-128 digest, as manifests
 * hold them. */
void import_hash_digest (XXH3_state_t *hash, guint8 *ret_digest);

/* ---- what the sources hand to the writer ------------------------------- */

typedef enum
{
  NODE_DIR,
  NODE_FILE,
  NODE_SYMLINK,
  NODE_FIFO,
  /* Refused: listed so that both sources share one message per kind. */
  NODE_CHAR_DEVICE,
  NODE_BLOCK_DEVICE,
  NODE_SOCKET,
  NODE_UNKNOWN,
} NodeType;

typedef struct
{
  const char *name;
  const void *value;
  size_t len;
} XattrRef;

/* Where the content of a regular file comes from. Hashes cover the
 * logical content: holes read as zeros, so a sparse file hashes the same
 * from a directory and from a tar stream. */
typedef struct
{
  /* Reads the whole content once, feeding @hash, and keeps what write()
   * needs to write it afterwards without reading the image again.
   * *ret_kept = FALSE, with nothing read, when it cannot (a tar entry too
   * large to hold in memory). */
  gboolean (*hash) (gpointer data, guint64 size, ContentHash *hash, gboolean *ret_kept,
                    GError **error);
  /* Writes the content into @fd (new, empty, open for reading and writing)
   * and makes it @size bytes long, feeding @hash unless it is NULL (or the
   * content was already hashed); adds the bytes written to *@bytes. */
  gboolean (*write) (gpointer data, int fd, guint64 size, ContentHash *hash, guint64 *bytes,
                     GError **error);
} ContentOps;

typedef struct
{
  NodeType type;
  /* Non-NULL: a hard link to this earlier entry (a path inside the image). */
  const char *hardlink_target;
  const char *symlink_target;
  mode_t perm; /* permission bits, including setuid/setgid/sticky */
  uid_t uid;
  gid_t gid;
  struct timespec times[2]; /* atime, mtime; tv_nsec = UTIME_OMIT when unknown */
  guint64 size;
  const XattrRef *xattrs;
  guint n_xattrs;
  /* Regular files (and tar hard links carrying data). NULL: no content. */
  const ContentOps *content;
  gpointer content_data;
} TreeEntry;

/* ---- the writer (tree-writer*.c) --------------------------------------- */

/* What a thread that writes regular files needs for itself. */
typedef struct
{
  guint8 *buffer;            /* IO_BUFFER_SIZE, allocated on first use */
  XXH3_state_t *hash_state;  /* extended attributes; allocated on first use */
  ContentHash *content_hash; /* allocated on first use */
  /* The last reference directory looked up (files come grouped by directory). */
  char *ref_parent_path;
  int ref_parent_fd; /* O_PATH, or -1 (also when that directory is missing) */
} FileWriter;

/* Regular files of a directory image are written by this many threads while
 * the walking thread creates directories, symlinks and the rest; at most
 * IMPORT_MAX_PENDING files (two fds each) wait for them. */
#define IMPORT_WORKERS 2
#define IMPORT_MAX_PENDING 128
/* The content of the queued files read ahead from a tar stream stays below
 * this (or is one file): the peak memory of a stage is bounded. */
#define IMPORT_MAX_HELD_BYTES (24 * 1024 * 1024)

typedef struct _FileJob FileJob;

/* An entry written so far (tree-writer-nodes.c): a tree of names. */
typedef struct _TreeNode TreeNode;
struct _TreeNode
{
  TreeNode *parent; /* NULL for the root */
  char *name;       /* "" for the root */
  guint depth;      /* 0 for the root */
  NodeType type;
  guint dir_index; /* NODE_DIR: index into TreeWriter.dirs */
};

typedef struct
{
  int root_fd; /* the destination directory itself (a real fd, not O_PATH) */
  gboolean privileged;
  /* Everything written so far: TreeNode, keyed by (parent, name). */
  GHashTable *nodes;
  TreeNode *root_node;
  /* Reference inodes already linked into this tree (st_ino). */
  GHashTable *ref_linked;
  GMutex ref_linked_lock;
  GPtrArray *dirs; /* DirRecord, in order of creation; [0] is the root */
  /* The directories from the root down to the last entry's parent; [0] is
   * the root (fd borrowed from root_fd). */
  GArray *stack;
  guint n_open;
  /* files is the walking thread's; bytes and linked_* are added to by the
   * workers too, atomically (progress_add()). */
  ImportProgress progress;
  const ImportOptions *options;
  gint try_clone;  /* atomic */
  FileWriter main; /* the walking thread's */

  /* The new tree's manifest; NULL when nobody needs one (no hashing then).
   * Guarded by lock. */
  Manifest *manifest;
  /* Deduplication: the reference tree and its manifest, or -1 and NULL.
   * Read-only while importing, so shared by the workers without a lock. */
  int ref_dfd;
  const Manifest *ref_manifest;
  uid_t self_uid;
  gid_t self_gid;

  /* The thread that starts the writeback of written files (both sources;
   * see tree_writer_start_writeback()), and the fds it has yet to see. */
  GThread *flusher;
  GAsyncQueue *flush_fds;

  /* The workers: they write the regular files of a directory image, and
   * a tar stream's small ones. */
  GThread *workers[IMPORT_WORKERS];
  guint n_workers;
  GAsyncQueue *jobs; /* FileJob, or the stop sentinel */
  GMutex lock;       /* guards pending, job_error and manifest */
  GCond job_done;
  guint pending;
  gsize pending_held_bytes;
  GError *job_error; /* the first worker's failure */
  gint failed;       /* atomic: job_error is set, skip the remaining jobs */
} TreeWriter;

/* tree-writer.c */
void tree_writer_init (TreeWriter *w, int root_fd, const ImportOptions *options);
void tree_writer_clear (TreeWriter *w);
void tree_writer_report (TreeWriter *w);
gboolean tree_writer_add (TreeWriter *w, const char *path, const TreeEntry *e, FileJob *job,
                          GError **error);
gboolean tree_writer_finish (TreeWriter *w, GError **error);
gboolean tree_writer_xattr_settable (TreeWriter *w, const char *name);
gboolean tree_writer_apply_fd_metadata (TreeWriter *w, int fd, const char *path, const TreeEntry *e,
                                        GError **error);

/* tree-writer-nodes.c */
void tree_nodes_init (TreeWriter *w);
void tree_nodes_clear (TreeWriter *w);
TreeNode *tree_node_child (TreeWriter *w, TreeNode *parent, const char *name);
/* The node of @comps[0..@n-1], or NULL. */
TreeNode *tree_node_lookup (TreeWriter *w, char **comps, guint n);
TreeNode *tree_node_add (TreeWriter *w, TreeNode *parent, const char *name, NodeType type);
/* "a/b/c"; "" for the root. */
char *tree_node_path (const TreeNode *node);
/* Makes the stack end at the directory @dir and returns its fd (owned by
 * the stack, valid until the next call); @entry_path (or, when NULL, the
 * path of @dir) names errors. */
gboolean tree_writer_enter_node (TreeWriter *w, const char *entry_path, TreeNode *dir, int *ret_fd,
                                 GError **error);
/* Enters @dir, a child of the stack's deepest directory. */
gboolean tree_writer_push_dir (TreeWriter *w, const char *entry_path, TreeNode *dir, int *ret_fd,
                               GError **error);
/* Closes every level but the root. */
void tree_writer_leave (TreeWriter *w);

/* tree-writer-file.c */
void file_writer_init (FileWriter *fw);
void file_writer_clear (FileWriter *fw);
guint8 *file_writer_buffer (FileWriter *fw);
gboolean file_writer_hash_fd (FileWriter *fw, int fd, guint64 size, ContentHash *hash,
                              GError **error);
gboolean tree_writer_write_regular_file (TreeWriter *w, FileWriter *fw, int parent_fd,
                                         const char *name, const char *key, const char *path,
                                         const TreeEntry *e, GError **error);

/* ---- the directory source's files, as the workers get them ------------- */

typedef struct
{
  GArray *refs;       /* XattrRef, pointing into storage */
  GPtrArray *storage; /* names and values */
} XattrList;

/* import-dir.c */
void xattr_list_init (XattrList *l);
void xattr_list_clear (XattrList *l);
/* Appends a copy of @name and @value. */
void xattr_list_add (XattrList *l, const char *name, const void *value, size_t len);

typedef struct
{
  TreeWriter *w;
  FileWriter *fw; /* of the thread writing the file */
  int fd;
  gboolean sparse; /* fewer blocks than bytes: copy extent by extent */
  gboolean held;   /* fw's buffer holds the whole content (hashed already) */
} FileCopy;

/* A regular file for a worker to write: everything
 * tree_writer_write_regular_file() needs, owned. A directory image's file
 * is read through copy; a tar entry's was read ahead into held. */
struct _FileJob
{
  TreeEntry e; /* e.xattrs points into xattrs, e.content_data to copy or held */
  XattrList xattrs;
  FileCopy copy;            /* copy.fd is owned */
  GDestroyNotify held_free; /* non-NULL: e.content_data is owned, freed with this */
  gsize held_bytes;         /* the memory held counts against IMPORT_MAX_HELD_BYTES */
  int parent_fd;            /* a dup of the destination directory's fd */
  char *name;
  char *key;
  char *path;
};

/* tree-writer-workers.c */
FileJob *file_job_new (const TreeEntry *e, XattrList *xattrs, const FileCopy *copy, int *fd);
/* Takes over @xattrs (leaving an empty list) and @held, the content that
 * @ops read, of @held_bytes. */
FileJob *file_job_new_held (const TreeEntry *e, XattrList *xattrs, const ContentOps *ops,
                            gpointer held, GDestroyNotify held_free, gsize held_bytes);
void file_job_free (FileJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FileJob, file_job_free)
void tree_writer_start_workers (TreeWriter *w);
gboolean tree_writer_drain (TreeWriter *w, GError **error);
gboolean tree_writer_stop_workers (TreeWriter *w, gboolean abandon, GError **error);
gboolean tree_writer_submit (TreeWriter *w, FileJob *job, int parent_fd, const char *name,
                             const char *key, const char *path, GError **error);
/* Files of at least WRITEBACK_MIN_BYTES get their writeback started by the
 * flusher thread; at most WRITEBACK_MAX_QUEUED wait for it (each holds an
 * fd), the rest are left to the stage's syncfs. */
#define WRITEBACK_MIN_BYTES (64 * 1024)
#define WRITEBACK_MAX_QUEUED 64
void tree_writer_start_writeback (TreeWriter *w);
void tree_writer_queue_writeback (TreeWriter *w, int fd, guint64 bytes);
void tree_writer_stop_writeback (TreeWriter *w);

/* ---- the sources ------------------------------------------------------- */

gboolean import_directory (TreeWriter *w, int image_fd, GError **error);
gboolean import_tar (TreeWriter *w, int image_fd, const char *image_path, GError **error);

G_END_DECLS

/* Importing an OS image into a new deployment tree.
 *
 * Two sources feed one writer: a directory walk and the entries of a tar
 * stream read by libarchive. The writer is the only code that touches the
 * destination, and it does so relative to directory fds: every directory on
 * the way to an entry is opened with O_NOFOLLOW|O_DIRECTORY, one component at
 * a time, so an image that plants a symlink `a -> /etc` and then writes
 * `a/passwd` is refused instead of followed. It also keeps a table of what it
 * has written, which gives hostile archives a precise message ("path goes
 * through the symlink "a"") before the kernel would give a bare ELOOP, and
 * which is how hard link targets are checked ("an entry written earlier").
 *
 * Ownership: as root, entries get the uid and gid recorded in the image
 * (numerically: the image's own /etc/passwd, not the host's, gives them
 * names). As non-root, everything belongs to the caller, like
 * `tar --no-same-owner`, and only user.* extended attributes are copied:
 * trusted.* and security.* (security.capability included) need privileges a
 * non-root caller does not have. As root, an extended attribute that cannot be
 * set is an error, never silently dropped: a binary that loses
 * security.capability breaks at runtime, far from the cause.
 *
 * Order of operations per inode matters: chown() clears setuid/setgid and
 * security.capability, and user.* xattrs need write permission, so it is
 * chown, xattrs, chmod, times. Directories get their metadata at the very
 * end, deepest first, so that their mtime is not disturbed by their contents
 * and a read-only directory (0555) does not stop a non-root import from
 * filling it.
 *
 * Deduplication: given a reference deployment and its manifest, a regular
 * file whose metadata (size, mode, owner, mtime, extended attributes) and
 * content hash equal the reference's file at the same path is hard-linked
 * from the reference tree instead of written. The metadata is compared
 * first, from the entry header alone; only then is the content read and
 * hashed, and written only if the hash differs. Every regular file's hash
 * goes into the new tree's manifest. A hard-linked inode is shared by both
 * deployments, so the writer never writes into an inode it did not create
 * in this import (see the hard link with data in tree_writer_add()).
 */
#include "config.h"

#include "image-import.h"
#include "errors.h"
#include "fsutil.h"
#include "manifest.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <locale.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

/* libarchive reports an unrecognised format or an unconvertible name with
 * this errno (archive_private.h: EFTYPE where it exists, else EILSEQ); the
 * public header does not export the name. */
#ifdef EFTYPE
#define IMPORT_ARCHIVE_ERRNO_FILE_FORMAT EFTYPE
#else
#define IMPORT_ARCHIVE_ERRNO_FILE_FORMAT EILSEQ
#endif

/* At most this many directory fds are held open on the way down a tree; a
 * hostile archive with thousands of nested components must not exhaust the
 * fd table. Deeper ancestors are re-opened (by name, O_NOFOLLOW) when needed. */
#define MAX_OPEN_DIRS 64

/* Reads from a tar stream and the fallback copy loop use buffers this large:
 * small reads dominate the cost of a compressed 350 MB image otherwise. */
#define IO_BUFFER_SIZE (1024 * 1024)

/* A tar entry that may be shared with the reference is held in memory while
 * it is hashed, so that it is written only if it differs; larger ones are
 * written while hashed and replaced by a link if they turn out equal. */
#define TAR_HOLD_MAX (16 * 1024 * 1024)

/* Extended attributes of symlinks. fsetxattr() and friends refuse O_PATH fds
 * (EBADF), and lsetxattr() needs a path string, which we never glue together.
 * Linux 6.13 added setxattrat()/getxattrat()/listxattrat() taking a directory
 * fd, a name and AT_SYMLINK_NOFOLLOW: exactly what is needed. glibc 2.36 has
 * no wrappers, so call them by number (identical on every architecture except
 * those with their own offsets). On older kernels (ENOSYS) symlink xattrs are
 * skipped: only trusted.* and security.* can exist on symlinks at all (the
 * kernel refuses user.* there), and the caller's kernel cannot set them through
 * a held fd. */
#if !defined(__NR_setxattrat) && !defined(__alpha__) && !defined(__mips__) && !defined(__ia64__)
#define __NR_setxattrat 463
#define __NR_getxattrat 464
#define __NR_listxattrat 465
#endif

struct xattrat_args
{
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

static ssize_t
symlink_setxattr_at (int dfd, const char *name, const char *key, const void *value, size_t len)
{
#ifdef __NR_setxattrat
  struct xattrat_args args = { .value = (uintptr_t)value, .size = len, .flags = 0 };
  return syscall (__NR_setxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof args);
#else
  errno = ENOSYS;
  return -1;
#endif
}

static ssize_t
symlink_getxattr_at (int dfd, const char *name, const char *key, void *value, size_t len)
{
#ifdef __NR_getxattrat
  struct xattrat_args args = { .value = (uintptr_t)value, .size = len, .flags = 0 };
  return syscall (__NR_getxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof args);
#else
  errno = ENOSYS;
  return -1;
#endif
}

static ssize_t
symlink_listxattr_at (int dfd, const char *name, char *list, size_t len)
{
#ifdef __NR_listxattrat
  return syscall (__NR_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, list, len);
#else
  errno = ENOSYS;
  return -1;
#endif
}

/* ---- messages ---------------------------------------------------------- */

/* An entry name fit for a message: printable UTF-8 as is, `"` and `\`
 * escaped, every other byte as \xNN. Names are bytes, not text. */
static char *
escape_name (const char *name)
{
  GString *s = g_string_new (NULL);
  const char *p = name;
  while (*p != '\0')
    {
      gunichar c = g_utf8_get_char_validated (p, -1);
      if (c == (gunichar)-1 || c == (gunichar)-2 || !g_unichar_isprint (c))
        {
          g_string_append_printf (s, "\\x%02x", (guchar)*p);
          p++;
          continue;
        }
      const char *next = g_utf8_next_char (p);
      if (c == '"' || c == '\\')
        g_string_append_c (s, '\\');
      g_string_append_len (s, p, next - p);
      p = next;
    }
  return g_string_free (s, FALSE);
}

/* Refuses an entry: STAGEHAND_ERROR_INVALID, `image entry "<path>": <reason>`. */
static gboolean throw_entry (GError **error, const char *path, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);

static gboolean
throw_entry (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *reason = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *escaped = escape_name (path);
  return throw_error (error, STAGEHAND_ERROR_INVALID, "image entry \"%s\": %s", escaped, reason);
}

/* A system call failed while writing an entry: `image entry "<path>": <what>: <strerror>`. */
static gboolean
throw_entry_errno (GError **error, const char *path, const char *what)
{
  int errsv = errno;
  g_autofree char *escaped = escape_name (path);
  return throw_errno_value (error, errsv, "image entry \"%s\": %s", escaped, what);
}

/* ---- what the sources hand to the writer -------------------------------- */

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

static const char *
node_type_name (NodeType type)
{
  switch (type)
    {
    case NODE_DIR:
      return "directory";
    case NODE_FILE:
      return "regular file";
    case NODE_SYMLINK:
      return "symlink";
    case NODE_FIFO:
      return "FIFO";
    case NODE_CHAR_DEVICE:
      return "character device";
    case NODE_BLOCK_DEVICE:
      return "block device";
    case NODE_SOCKET:
      return "socket";
    case NODE_UNKNOWN:
      break;
    }
  return "unknown entry type";
}

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
  gboolean (*hash) (gpointer data, guint64 size, XXH3_state_t *hash, gboolean *ret_kept,
                    GError **error);
  /* Writes the content into @fd (new, empty, open for reading and writing)
   * and makes it @size bytes long, feeding @hash unless it is NULL (or the
   * content was already hashed); adds the bytes written to *@bytes. */
  gboolean (*write) (gpointer data, int fd, guint64 size, XXH3_state_t *hash, guint64 *bytes,
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

/* ---- the writer ---------------------------------------------------------- */

typedef struct
{
  char *name;
  void *value;
  size_t len;
} Xattr;

static void
xattr_free (gpointer p)
{
  Xattr *x = p;
  g_free (x->name);
  g_free (x->value);
  g_free (x);
}

typedef struct
{
  char *path; /* normalized, "" for the root */
  /* FALSE for a directory created only as the parent of an entry: it gets
   * 0755 and keeps the caller's ownership and the current time. */
  gboolean from_image;
  mode_t perm;
  uid_t uid;
  gid_t gid;
  struct timespec times[2];
  GPtrArray *xattrs; /* Xattr */
} DirRecord;

static void
dir_record_free (gpointer p)
{
  DirRecord *d = p;
  g_free (d->path);
  g_clear_pointer (&d->xattrs, g_ptr_array_unref);
  g_free (d);
}

typedef struct
{
  NodeType type;
  guint dir_index; /* NODE_DIR: index into TreeWriter.dirs */
} TreeNode;

typedef struct
{
  char *name;
  int fd; /* O_PATH directory fd, or -1 when closed to stay under MAX_OPEN_DIRS */
} StackLevel;

/* What a thread that writes regular files needs for itself. */
typedef struct
{
  guint8 *buffer;           /* IO_BUFFER_SIZE, allocated on first use */
  XXH3_state_t *hash_state; /* allocated on first use */
  /* The last reference directory looked up (files come grouped by directory). */
  char *ref_parent_path;
  int ref_parent_fd; /* O_PATH, or -1 (also when that directory is missing) */
} FileWriter;

static void
file_writer_init (FileWriter *fw)
{
  memset (fw, 0, sizeof *fw);
  fw->ref_parent_fd = -1;
}

static void
file_writer_clear (FileWriter *fw)
{
  g_clear_pointer (&fw->buffer, g_free);
  g_clear_pointer (&fw->hash_state, XXH3_freeState);
  g_clear_pointer (&fw->ref_parent_path, g_free);
  if (fw->ref_parent_fd >= 0)
    (void)close (fw->ref_parent_fd); /* O_PATH fd: nothing to report */
  fw->ref_parent_fd = -1;
}

static guint8 *
file_writer_buffer (FileWriter *fw)
{
  if (fw->buffer == NULL)
    fw->buffer = g_malloc (IO_BUFFER_SIZE);
  return fw->buffer;
}

static XXH3_state_t *
file_writer_hash (FileWriter *fw)
{
  if (fw->hash_state == NULL)
    fw->hash_state = XXH3_createState ();
  g_assert (fw->hash_state != NULL);
  return fw->hash_state;
}

/* Regular files of a directory image are written by this many threads while
 * the walking thread creates directories, symlinks and the rest; at most
 * IMPORT_MAX_PENDING files (two fds each) wait for them. */
#define IMPORT_WORKERS 2
#define IMPORT_MAX_PENDING 128

typedef struct _FileJob FileJob;

typedef struct
{
  int root_fd; /* the destination directory itself (a real fd, not O_PATH) */
  gboolean privileged;
  /* normalized path -> TreeNode: everything written so far */
  GHashTable *nodes;
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

  /* The workers (directory images only; none for tar streams). */
  GThread *workers[IMPORT_WORKERS];
  guint n_workers;
  GAsyncQueue *jobs; /* FileJob, or the stop sentinel */
  GMutex lock;       /* guards pending, job_error and manifest */
  GCond job_done;
  guint pending;
  GError *job_error; /* the first worker's failure */
  gint failed;       /* atomic: job_error is set, skip the remaining jobs */
} TreeWriter;

static void
progress_add (guint64 *counter, guint64 n)
{
  __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static void
tree_writer_record (TreeWriter *w, const ManifestEntry *entry)
{
  g_mutex_lock (&w->lock);
  manifest_set (w->manifest, entry);
  g_mutex_unlock (&w->lock);
}

static void
stack_level_clear (gpointer p)
{
  StackLevel *l = p;
  g_free (l->name);
  if (l->fd >= 0)
    (void)close (l->fd); /* read-only O_PATH fd: nothing to report */
}

static void
tree_writer_init (TreeWriter *w, int root_fd, const ImportOptions *options)
{
  memset (w, 0, sizeof *w);
  w->root_fd = root_fd;
  w->privileged = geteuid () == 0;
  w->nodes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  w->ref_linked = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_mutex_init (&w->ref_linked_lock);
  w->dirs = g_ptr_array_new_with_free_func (dir_record_free);
  w->stack = g_array_new (FALSE, TRUE, sizeof (StackLevel));
  g_array_set_clear_func (w->stack, stack_level_clear);
  StackLevel root = { .name = NULL, .fd = -1 };
  g_array_append_val (w->stack, root);
  w->options = options;
  w->try_clone = TRUE;
  file_writer_init (&w->main);
  g_mutex_init (&w->lock);
  g_cond_init (&w->job_done);
  w->ref_dfd = -1;
  if (options->reference_manifest != NULL && options->reference_dfd >= 0)
    {
      w->ref_dfd = options->reference_dfd;
      w->ref_manifest = options->reference_manifest;
    }
  w->self_uid = geteuid ();
  w->self_gid = getegid ();

  DirRecord *rootrec = g_new0 (DirRecord, 1);
  rootrec->path = g_strdup ("");
  rootrec->perm = 0755;
  g_ptr_array_add (w->dirs, rootrec);
}

static void
tree_writer_clear (TreeWriter *w)
{
  g_clear_pointer (&w->nodes, g_hash_table_unref);
  g_clear_pointer (&w->ref_linked, g_hash_table_unref);
  g_mutex_clear (&w->ref_linked_lock);
  g_clear_pointer (&w->dirs, g_ptr_array_unref);
  g_clear_pointer (&w->stack, g_array_unref);
  g_clear_pointer (&w->manifest, manifest_free);
  file_writer_clear (&w->main);
  g_assert (w->n_workers == 0);
  g_clear_pointer (&w->jobs, g_async_queue_unref);
  g_clear_error (&w->job_error);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->job_done);
}

static void
tree_writer_report (TreeWriter *w)
{
  if (w->options->progress == NULL)
    return;
  ImportProgress snapshot = {
    .files = w->progress.files,
    .bytes = __atomic_load_n (&w->progress.bytes, __ATOMIC_RELAXED),
    .linked_files = __atomic_load_n (&w->progress.linked_files, __ATOMIC_RELAXED),
    .linked_bytes = __atomic_load_n (&w->progress.linked_bytes, __ATOMIC_RELAXED),
    .done = w->progress.done,
  };
  w->options->progress (&snapshot, w->options->progress_data);
}

/* Splits an image path into its components, refusing what could leave the
 * tree. "", ".", "./" and empty or "." components are the root and no-ops, as
 * tar writes them. @what names the path in messages ("hard link target ..."). */
static gboolean
split_image_path (const char *entry_path, const char *path, const char *what, char ***ret_comps,
                  GError **error)
{
  if (path[0] == '/')
    {
      if (what == NULL)
        return throw_entry (error, entry_path, "absolute path");
      g_autofree char *escaped = escape_name (path);
      return throw_entry (error, entry_path, "%s \"%s\" is an absolute path", what, escaped);
    }
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);
  g_autoptr (GPtrArray) comps = g_ptr_array_new_with_free_func (g_free);
  for (char **p = parts; *p != NULL; p++)
    {
      if (**p == '\0' || strcmp (*p, ".") == 0)
        continue;
      if (strcmp (*p, "..") == 0)
        {
          if (what == NULL)
            return throw_entry (error, entry_path, "path leaves the image (\"..\")");
          g_autofree char *escaped = escape_name (path);
          return throw_entry (error, entry_path, "%s \"%s\" leaves the image (\"..\")", what,
                              escaped);
        }
      g_ptr_array_add (comps, g_strdup (*p));
    }
  g_ptr_array_add (comps, NULL);
  *ret_comps = (char **)g_ptr_array_free (g_steal_pointer (&comps), FALSE);
  return TRUE;
}

/* "a/b/c" from the first @n components. */
static char *
join_components (char **comps, guint n)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append_c (s, '/');
      g_string_append (s, comps[i]);
    }
  return g_string_free (s, FALSE);
}

static StackLevel *
stack_level (TreeWriter *w, guint i)
{
  return &g_array_index (w->stack, StackLevel, i);
}

static void
stack_truncate (TreeWriter *w, guint len)
{
  for (guint i = len; i < w->stack->len; i++)
    if (stack_level (w, i)->fd >= 0)
      w->n_open--;
  if (len < w->stack->len)
    g_array_set_size (w->stack, len);
}

/* Closes the shallowest open level above the root, below @keep. */
static void
stack_limit_open (TreeWriter *w, guint keep)
{
  if (w->n_open <= MAX_OPEN_DIRS)
    return;
  for (guint i = 1; i < keep; i++)
    {
      StackLevel *l = stack_level (w, i);
      if (l->fd >= 0)
        {
          (void)close (l->fd); /* O_PATH fd: nothing to report */
          l->fd = -1;
          w->n_open--;
          return;
        }
    }
}

static gboolean
stack_level_fd (TreeWriter *w, const char *entry_path, guint i, int *ret_fd, GError **error)
{
  if (i == 0)
    {
      *ret_fd = w->root_fd;
      return TRUE;
    }
  StackLevel *l = stack_level (w, i);
  if (l->fd < 0)
    {
      int parent_fd;
      if (!stack_level_fd (w, entry_path, i - 1, &parent_fd, error))
        return FALSE;
      l = stack_level (w, i);
      l->fd = openat (parent_fd, l->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (l->fd < 0)
        return throw_entry_errno (error, entry_path, "re-opening a parent directory");
      w->n_open++;
      stack_limit_open (w, i);
    }
  *ret_fd = stack_level (w, i)->fd;
  return TRUE;
}

static DirRecord *
tree_writer_add_dir_record (TreeWriter *w, const char *path, guint *ret_index)
{
  DirRecord *d = g_new0 (DirRecord, 1);
  d->path = g_strdup (path);
  d->perm = 0755;
  d->times[0].tv_nsec = UTIME_OMIT;
  d->times[1].tv_nsec = UTIME_OMIT;
  *ret_index = w->dirs->len;
  g_ptr_array_add (w->dirs, d);
  return d;
}

/* The directory @comps[@i] below @parent_fd is about to be entered on the way
 * to @entry_path: it must be a directory written earlier, or is created now
 * as an implicit parent (tar archives need not list every directory). */
static gboolean
ensure_parent_dir (TreeWriter *w, const char *entry_path, char **comps, guint i, int parent_fd,
                   GError **error)
{
  g_autofree char *key = join_components (comps, i + 1);
  TreeNode *node = g_hash_table_lookup (w->nodes, key);
  if (node != NULL)
    {
      if (node->type == NODE_DIR)
        return TRUE;
      g_autofree char *escaped = escape_name (key);
      if (node->type == NODE_SYMLINK)
        return throw_entry (error, entry_path, "path goes through the symlink \"%s\"", escaped);
      return throw_entry (error, entry_path, "path goes through \"%s\", which is a %s", escaped,
                          node_type_name (node->type));
    }
  if (mkdirat (parent_fd, comps[i], 0700) < 0)
    return throw_entry_errno (error, entry_path, "creating a parent directory");
  node = g_new0 (TreeNode, 1);
  node->type = NODE_DIR;
  tree_writer_add_dir_record (w, key, &node->dir_index);
  g_hash_table_insert (w->nodes, g_steal_pointer (&key), node);
  return TRUE;
}

/* Makes the stack hold the root and the directories @comps[0..@n-1] below it,
 * and returns the fd of the deepest (owned by the stack, valid until the next
 * call). With @create, each newly entered component is checked against the
 * table and created when missing. Every component is opened with O_NOFOLLOW:
 * even if the table were wrong, a symlink is never followed. */
static gboolean
tree_writer_enter (TreeWriter *w, const char *entry_path, char **comps, guint n, gboolean create,
                   int *ret_fd, GError **error)
{
  guint common = 0;
  while (common < n && common + 1 < w->stack->len
         && strcmp (stack_level (w, common + 1)->name, comps[common]) == 0)
    common++;
  stack_truncate (w, common + 1);

  for (guint i = common; i < n; i++)
    {
      int parent_fd;
      if (!stack_level_fd (w, entry_path, i, &parent_fd, error))
        return FALSE;
      if (create && !ensure_parent_dir (w, entry_path, comps, i, parent_fd, error))
        return FALSE;
      int fd = openat (parent_fd, comps[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return throw_entry_errno (error, entry_path, "opening a parent directory");
      StackLevel l = { .name = g_strdup (comps[i]), .fd = fd };
      g_array_append_val (w->stack, l);
      w->n_open++;
      stack_limit_open (w, i + 1);
    }
  return stack_level_fd (w, entry_path, n, ret_fd, error);
}

/* trusted.* and security.* need CAP_SYS_ADMIN / CAP_SETFCAP: skipped when not
 * running as root (see the top of this file). */
static gboolean
xattr_settable (TreeWriter *w, const char *name)
{
  return w->privileged
         || (!g_str_has_prefix (name, "trusted.") && !g_str_has_prefix (name, "security."));
}

static gboolean
set_fd_xattrs (TreeWriter *w, int fd, const char *path, const XattrRef *xattrs, guint n,
               GError **error)
{
  for (guint i = 0; i < n; i++)
    {
      if (!xattr_settable (w, xattrs[i].name))
        continue;
      if (fsetxattr (fd, xattrs[i].name, xattrs[i].value, xattrs[i].len, 0) < 0)
        {
          g_autofree char *what = g_strdup_printf ("setting extended attribute %s", xattrs[i].name);
          return throw_entry_errno (error, path, what);
        }
    }
  return TRUE;
}

/* Ownership, xattrs, mode and times of a regular file or FIFO, in the order
 * explained at the top of this file. */
static gboolean
apply_fd_metadata (TreeWriter *w, int fd, const char *path, const TreeEntry *e, GError **error)
{
  if (w->privileged && fchown (fd, e->uid, e->gid) < 0)
    return throw_entry_errno (error, path, "setting owner");
  if (!set_fd_xattrs (w, fd, path, e->xattrs, e->n_xattrs, error))
    return FALSE;
  if (fchmod (fd, e->perm) < 0)
    return throw_entry_errno (error, path, "setting mode");
  if (futimens (fd, e->times) < 0)
    return throw_entry_errno (error, path, "setting times");
  return TRUE;
}

/* Adds `image entry "<path>": ` in front of an error from a content source. */
static gboolean
prefix_entry_error (GError **error, const char *path)
{
  g_autofree char *escaped = escape_name (path);
  return prefix_error (error, "image entry \"%s\": ", escaped);
}

static gboolean
pwrite_all (int fd, const guint8 *buf, size_t len, off_t offset)
{
  while (len > 0)
    {
      ssize_t n = pwrite (fd, buf, len, offset);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      buf += n;
      len -= n;
      offset += n;
    }
  return TRUE;
}

/* Sets errno on failure. */
static gboolean
pread_all (int fd, guint8 *buf, size_t len, off_t offset)
{
  while (len > 0)
    {
      ssize_t n = pread (fd, buf, len, offset);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          errno = ENODATA; /* the file shrank while importing */
          return FALSE;
        }
      buf += n;
      len -= n;
      offset += n;
    }
  return TRUE;
}

static void
hash_zeros (XXH3_state_t *hash, guint64 len)
{
  static const guint8 zeros[64 * 1024];
  while (len > 0)
    {
      gsize n = MIN (len, sizeof zeros);
      XXH3_128bits_update (hash, zeros, n);
      len -= n;
    }
}

/* Hashes the first @size bytes of @fd (holes read as zeros). */
static gboolean
hash_fd (FileWriter *fw, int fd, guint64 size, XXH3_state_t *hash, GError **error)
{
  guint8 *buf = file_writer_buffer (fw);
  for (guint64 pos = 0; pos < size;)
    {
      gsize n = MIN (size - pos, (guint64)IO_BUFFER_SIZE);
      if (!pread_all (fd, buf, n, pos))
        return throw_errno (error, "reading");
      XXH3_128bits_update (hash, buf, n);
      pos += n;
    }
  return TRUE;
}

static void
hash_digest (XXH3_state_t *hash, guint8 *ret_digest)
{
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash (&canonical, XXH3_128bits_digest (hash));
  G_STATIC_ASSERT (sizeof canonical.digest == MANIFEST_HASH_LEN);
  memcpy (ret_digest, canonical.digest, MANIFEST_HASH_LEN);
}

static gint
compare_xattr_names (gconstpointer a, gconstpointer b)
{
  const XattrRef *x = *(const XattrRef *const *)a, *y = *(const XattrRef *const *)b;
  return strcmp (x->name, y->name);
}

/* The extended attributes given to the new file (see xattr_settable()), in name
 * order, each as its name, a NUL, its length (64-bit little endian) and its
 * value. The order of listxattr() is not stable, hence the sort. */
static void
hash_xattrs (TreeWriter *w, FileWriter *fw, const TreeEntry *e, guint8 *ret_digest)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (e->n_xattrs);
  for (guint i = 0; i < e->n_xattrs; i++)
    if (xattr_settable (w, e->xattrs[i].name))
      g_ptr_array_add (sorted, (gpointer)&e->xattrs[i]);
  g_ptr_array_sort (sorted, compare_xattr_names);
  XXH3_state_t *hash = file_writer_hash (fw);
  XXH3_128bits_reset (hash);
  for (guint i = 0; i < sorted->len; i++)
    {
      const XattrRef *x = sorted->pdata[i];
      guint64 len = GUINT64_TO_LE ((guint64)x->len);
      XXH3_128bits_update (hash, x->name, strlen (x->name) + 1);
      XXH3_128bits_update (hash, &len, sizeof len);
      XXH3_128bits_update (hash, x->value, x->len);
    }
  hash_digest (hash, ret_digest);
}

/* The metadata the new file will have: as written, not as in the image
 * (a non-root import owns everything and sets only some xattrs), since
 * that is what a hard-linked inode must match. */
static void
manifest_entry_init (TreeWriter *w, FileWriter *fw, const char *key, const TreeEntry *e,
                     ManifestEntry *ret_entry)
{
  *ret_entry = (ManifestEntry){
    .path = key,
    .size = e->size,
    .mode = e->perm,
    .uid = w->privileged ? e->uid : w->self_uid,
    .gid = w->privileged ? e->gid : w->self_gid,
    .mtime_sec = e->times[1].tv_sec,
    .mtime_nsec = e->times[1].tv_nsec,
  };
  hash_xattrs (w, fw, e, ret_entry->xattr_hash);
}

/* The reference's entry for @key if everything but the content matches:
 * only then is a link possible, and worth hashing for before writing. An
 * entry without an mtime gets the current time, so it never matches. */
static const ManifestEntry *
reference_candidate (TreeWriter *w, const TreeEntry *e, const ManifestEntry *me)
{
  if (w->ref_manifest == NULL || e->times[1].tv_nsec == UTIME_OMIT)
    return NULL;
  const ManifestEntry *ref = manifest_lookup (w->ref_manifest, me->path);
  if (ref == NULL || ref->size != me->size || ref->mode != me->mode || ref->uid != me->uid
      || ref->gid != me->gid || ref->mtime_sec != me->mtime_sec || ref->mtime_nsec != me->mtime_nsec
      || memcmp (ref->xattr_hash, me->xattr_hash, MANIFEST_HASH_LEN) != 0)
    return NULL;
  return ref;
}

/* The reference directory holding @key, as an O_PATH fd owned by the
 * writer, or -1. openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH) resolves the
 * whole path in one call and refuses a symlink anywhere on it: a manifest
 * path leads to a file inside the reference tree or nowhere. */
static int
reference_parent_fd (TreeWriter *w, FileWriter *fw, const char *key)
{
  const char *slash = strrchr (key, '/');
  if (slash == NULL)
    return w->ref_dfd;
  gsize len = slash - key;
  if (fw->ref_parent_path != NULL && strlen (fw->ref_parent_path) == len
      && memcmp (fw->ref_parent_path, key, len) == 0)
    return fw->ref_parent_fd;
  g_free (fw->ref_parent_path);
  if (fw->ref_parent_fd >= 0)
    (void)close (fw->ref_parent_fd); /* O_PATH fd: nothing to report */
  fw->ref_parent_path = g_strndup (key, len);
  struct open_how how = {
    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  /* A failure (ENOENT; ENOSYS before Linux 5.6) only means no link. */
  fw->ref_parent_fd = syscall (SYS_openat2, w->ref_dfd, fw->ref_parent_path, &how, sizeof how);
  return fw->ref_parent_fd;
}

/* Two files of the image must never become one inode because their
 * counterparts in the reference are hard links of each other (or the same
 * file linked twice before): each reference inode is linked into the new
 * tree at most once. The image's own hard links are made by the writer from
 * the image's structure, not through the reference. */
static gboolean
claim_reference_inode (TreeWriter *w, ino_t ino)
{
  gint64 key = ino;
  g_mutex_lock (&w->ref_linked_lock);
  gboolean fresh = !g_hash_table_contains (w->ref_linked, &key);
  if (fresh)
    g_hash_table_add (w->ref_linked, g_memdup2 (&key, sizeof key));
  g_mutex_unlock (&w->ref_linked_lock);
  return fresh;
}

/* Hard-links the reference's file for @ref as @name below @parent_fd.
 * FALSE (no error) when that cannot be done: the caller writes the file. */
static gboolean
reference_link (TreeWriter *w, FileWriter *fw, const ManifestEntry *ref, int parent_fd,
                const char *name)
{
  int ref_parent = reference_parent_fd (w, fw, ref->path);
  if (ref_parent < 0)
    return FALSE;
  const char *slash = strrchr (ref->path, '/');
  const char *base = slash != NULL ? slash + 1 : ref->path;
  /* The manifest vouches for the content (re-reading old trees is what it
   * saves), but the inode must still be what it describes, or a manifest
   * out of step with its tree would put a wrong file into a new deployment. */
  struct stat st;
  if (fstatat (ref_parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode)
      || (guint64)st.st_size != ref->size || (st.st_mode & 07777) != ref->mode
      || st.st_uid != ref->uid || st.st_gid != ref->gid || st.st_mtim.tv_sec != ref->mtime_sec
      || (guint32)st.st_mtim.tv_nsec != ref->mtime_nsec || !claim_reference_inode (w, st.st_ino))
    return FALSE;
  /* EMLINK (ext4 caps an inode at 65000 names), EPERM (fs.protected_hardlinks
   * for a file the caller does not own), ...: write the file instead. */
  return linkat (ref_parent, base, parent_fd, name, 0) == 0;
}

/* Replaces the file just written as @name by a link to the reference's
 * equal file; best effort (FALSE keeps the written file). */
static gboolean
reference_relink (TreeWriter *w, FileWriter *fw, const ManifestEntry *ref, int parent_fd,
                  const char *name)
{
  g_autofree char *tmp = fs_temp_name ("link");
  if (!reference_link (w, fw, ref, parent_fd, tmp))
    return FALSE;
  if (renameat (parent_fd, tmp, parent_fd, name) < 0)
    {
      (void)unlinkat (parent_fd, tmp, 0); /* best effort: the written file stays */
      return FALSE;
    }
  return TRUE;
}

static void
count_linked (TreeWriter *w, guint64 size)
{
  progress_add (&w->progress.linked_files, 1);
  progress_add (&w->progress.linked_bytes, size);
}

/* Creates @name and writes the entry into it, feeding @hash unless NULL.
 * With @me, an unknown mtime is filled in from the file. */
static gboolean
create_regular_file (TreeWriter *w, int parent_fd, const char *name, const char *path,
                     const TreeEntry *e, XXH3_state_t *hash, ManifestEntry *me, GError **error)
{
  autofd fd = openat (parent_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return throw_entry_errno (error, path, "creating file");
  guint64 bytes = 0;
  gboolean ok
      = e->content == NULL || e->content->write (e->content_data, fd, e->size, hash, &bytes, error);
  progress_add (&w->progress.bytes, bytes);
  if (!ok)
    return prefix_entry_error (error, path);
  if (!apply_fd_metadata (w, fd, path, e, error))
    return FALSE;
  if (me != NULL && e->times[1].tv_nsec == UTIME_OMIT)
    {
      struct stat st;
      if (fstat (fd, &st) < 0)
        return throw_entry_errno (error, path, "reading the new file");
      me->mtime_sec = st.st_mtim.tv_sec;
      me->mtime_nsec = st.st_mtim.tv_nsec;
    }
  return TRUE;
}

/* A regular file: linked from the reference when equal to its file at the
 * same path, written otherwise; recorded in the manifest either way. */
static gboolean
write_regular_file (TreeWriter *w, FileWriter *fw, int parent_fd, const char *name, const char *key,
                    const char *path, const TreeEntry *e, GError **error)
{
  if (w->manifest == NULL)
    return create_regular_file (w, parent_fd, name, path, e, NULL, NULL, error);

  ManifestEntry me;
  manifest_entry_init (w, fw, key, e, &me);
  const ManifestEntry *ref = reference_candidate (w, e, &me);
  XXH3_state_t *hash = file_writer_hash (fw);
  XXH3_128bits_reset (hash);
  if (ref != NULL)
    {
      /* Hash first, write only if different: an unchanged file is read once
       * and never written. */
      gboolean kept = TRUE;
      if (e->content != NULL && !e->content->hash (e->content_data, e->size, hash, &kept, error))
        return prefix_entry_error (error, path);
      if (kept)
        {
          hash_digest (hash, me.content_hash);
          if (memcmp (me.content_hash, ref->content_hash, MANIFEST_HASH_LEN) == 0
              && reference_link (w, fw, ref, parent_fd, name))
            {
              progress_add (&w->progress.bytes, e->size);
              count_linked (w, e->size);
            }
          else if (!create_regular_file (w, parent_fd, name, path, e, NULL, &me, error))
            return FALSE;
          tree_writer_record (w, &me);
          return TRUE;
        }
    }

  /* Hashed while written; a large tar entry that turns out equal is then
   * replaced by a link (its blocks are freed before they reach the disk). */
  if (!create_regular_file (w, parent_fd, name, path, e, hash, &me, error))
    return FALSE;
  hash_digest (hash, me.content_hash);
  if (ref != NULL && memcmp (me.content_hash, ref->content_hash, MANIFEST_HASH_LEN) == 0
      && reference_relink (w, fw, ref, parent_fd, name))
    count_linked (w, e->size);
  tree_writer_record (w, &me);
  return TRUE;
}

static gboolean
write_symlink (TreeWriter *w, int parent_fd, const char *name, const char *path, const TreeEntry *e,
               GError **error)
{
  if (e->symlink_target == NULL || e->symlink_target[0] == '\0')
    return throw_entry (error, path, "symlink without a target");
  /* The target is stored as it is, absolute, dangling or with "..": it is
   * never followed here, and inside the deployment it means what it means on
   * the booted system. */
  if (symlinkat (e->symlink_target, parent_fd, name) < 0)
    return throw_entry_errno (error, path, "creating symlink");
  if (w->privileged && fchownat (parent_fd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return throw_entry_errno (error, path, "setting owner");
  for (guint i = 0; i < e->n_xattrs; i++)
    {
      const XattrRef *x = &e->xattrs[i];
      if (!xattr_settable (w, x->name))
        continue;
      if (symlink_setxattr_at (parent_fd, name, x->name, x->value, x->len) < 0)
        {
          /* Kernel older than 6.13: no way to reach a symlink's xattrs
           * through a held fd (see symlink_setxattr_at); skip them. */
          if (errno == ENOSYS)
            break;
          g_autofree char *what = g_strdup_printf ("setting extended attribute %s", x->name);
          return throw_entry_errno (error, path, what);
        }
    }
  if (utimensat (parent_fd, name, e->times, AT_SYMLINK_NOFOLLOW) < 0)
    return throw_entry_errno (error, path, "setting times");
  return TRUE;
}

static gboolean
write_fifo (TreeWriter *w, int parent_fd, const char *name, const char *path, const TreeEntry *e,
            GError **error)
{
  if (mknodat (parent_fd, name, S_IFIFO | 0600, 0) < 0)
    return throw_entry_errno (error, path, "creating FIFO");
  /* Opening a FIFO for reading with O_NONBLOCK returns at once, writer or
   * not, and gives a real fd for fchown/fchmod/fsetxattr/futimens. */
  autofd fd = openat (parent_fd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return throw_entry_errno (error, path, "opening the new FIFO");
  return apply_fd_metadata (w, fd, path, e, error);
}

static void
dir_record_set (DirRecord *d, const TreeEntry *e)
{
  d->from_image = TRUE;
  d->perm = e->perm;
  d->uid = e->uid;
  d->gid = e->gid;
  d->times[0] = e->times[0];
  d->times[1] = e->times[1];
  g_clear_pointer (&d->xattrs, g_ptr_array_unref);
  if (e->n_xattrs > 0)
    {
      d->xattrs = g_ptr_array_new_with_free_func (xattr_free);
      for (guint i = 0; i < e->n_xattrs; i++)
        {
          Xattr *x = g_new0 (Xattr, 1);
          x->name = g_strdup (e->xattrs[i].name);
          x->value = g_memdup2 (e->xattrs[i].value, e->xattrs[i].len);
          x->len = e->xattrs[i].len;
          g_ptr_array_add (d->xattrs, x);
        }
    }
}

static void
tree_writer_entry_done (TreeWriter *w)
{
  w->progress.files++;
  tree_writer_report (w);
}

static void file_job_free (FileJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FileJob, file_job_free)
static gboolean tree_writer_drain (TreeWriter *w, GError **error);
static gboolean tree_writer_submit (TreeWriter *w, FileJob *job, int parent_fd, const char *name,
                                    const char *key, const char *path, GError **error);

/* The manifest entry of @from_key, if any, also for @to_key (a second name
 * of the same inode). */
static void
tree_writer_copy_record (TreeWriter *w, const char *from_key, const char *to_key)
{
  if (w->manifest == NULL)
    return;
  g_mutex_lock (&w->lock);
  const ManifestEntry *from = manifest_lookup (w->manifest, from_key);
  if (from != NULL)
    {
      ManifestEntry copy = *from;
      copy.path = to_key;
      manifest_set (w->manifest, &copy);
    }
  g_mutex_unlock (&w->lock);
}

/* Writes one entry. @path is the entry's name in the image, as the source
 * gives it (raw bytes, not yet checked). A regular file comes with @job
 * (consumed) when a worker is to write it. */
static gboolean
tree_writer_add (TreeWriter *w, const char *path, const TreeEntry *e, FileJob *job, GError **error)
{
  g_autoptr (FileJob) owned_job = job;
  switch (e->type)
    {
    case NODE_CHAR_DEVICE:
      return throw_entry (error, path, "character device nodes are not allowed in an image");
    case NODE_BLOCK_DEVICE:
      return throw_entry (error, path, "block device nodes are not allowed in an image");
    case NODE_SOCKET:
      return throw_entry (error, path, "sockets are not allowed in an image");
    case NODE_UNKNOWN:
      return throw_entry (error, path, "unsupported entry type");
    case NODE_DIR:
    case NODE_FILE:
    case NODE_SYMLINK:
    case NODE_FIFO:
      break;
    }

  g_auto (GStrv) comps = NULL;
  if (!split_image_path (path, path, NULL, &comps, error))
    return FALSE;
  guint n = g_strv_length (comps);
  if (n == 0)
    {
      if (e->type != NODE_DIR || e->hardlink_target != NULL)
        return throw_entry (error, path, "the image root must be a directory, not a %s",
                            e->hardlink_target ? "hard link" : node_type_name (e->type));
      dir_record_set (w->dirs->pdata[0], e);
      tree_writer_entry_done (w);
      return TRUE;
    }
  g_autofree char *key = join_components (comps, n);

  NodeType type = e->type;
  g_auto (GStrv) target_comps = NULL;
  guint target_n = 0;
  g_autofree char *target_key = NULL;
  if (e->hardlink_target != NULL)
    {
      if (!split_image_path (path, e->hardlink_target, "hard link target", &target_comps, error))
        return FALSE;
      target_n = g_strv_length (target_comps);
      target_key = join_components (target_comps, target_n);
      g_autofree char *escaped_target = escape_name (e->hardlink_target);
      TreeNode *target = g_hash_table_lookup (w->nodes, target_key);
      if (target_n == 0 || (target != NULL && target->type == NODE_DIR))
        return throw_entry (error, path, "hard link target \"%s\" is a directory", escaped_target);
      if (strcmp (target_key, key) == 0)
        return throw_entry (error, path, "hard link to itself");
      if (target == NULL)
        return throw_entry (error, path,
                            "hard link target \"%s\" is not an entry written earlier in the image",
                            escaped_target);
      if (e->content != NULL && target->type != NODE_FILE)
        return throw_entry (error, path, "hard link with data to \"%s\", which is a %s",
                            escaped_target, node_type_name (target->type));
      type = target->type;
    }

  TreeNode *existing = g_hash_table_lookup (w->nodes, key);
  /* A worker may still be writing the target, or the entry replaced. */
  if ((e->hardlink_target != NULL || existing != NULL) && !tree_writer_drain (w, error))
    return FALSE;
  if (existing != NULL && existing->type != type)
    {
      if (existing->type == NODE_DIR)
        return throw_entry (error, path, "would replace a directory with a %s",
                            node_type_name (type));
      return throw_entry (error, path, "duplicate entry of a different type (a %s, then a %s)",
                          node_type_name (existing->type), node_type_name (type));
    }

  autofd target_parent_fd = -1;
  if (e->hardlink_target != NULL)
    {
      /* The target was written through checked directories, so its parents
       * need no checks now; the entry's own parents are entered next, and the
       * stack holds one path at a time, hence the dup. */
      int fd;
      if (!tree_writer_enter (w, path, target_comps, target_n - 1, FALSE, &fd, error))
        return FALSE;
      target_parent_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
      if (target_parent_fd < 0)
        return throw_entry_errno (error, path, "duplicating a directory fd");
    }

  int parent_fd;
  if (!tree_writer_enter (w, path, comps, n - 1, TRUE, &parent_fd, error))
    return FALSE;
  const char *name = comps[n - 1];

  if (existing != NULL && type == NODE_DIR)
    {
      /* Listed again, or listed after a child made us create it: the entry
       * gives the metadata. */
      dir_record_set (w->dirs->pdata[existing->dir_index], e);
      tree_writer_entry_done (w);
      return TRUE;
    }
  /* The same non-directory listed twice: the later entry wins, as when tar
   * extracts an archive with appended updates. */
  if (existing != NULL && unlinkat (parent_fd, name, 0) < 0)
    return throw_entry_errno (error, path, "replacing an earlier entry of the same name");

  guint dir_index = 0;
  if (e->hardlink_target != NULL && e->content != NULL)
    {
      /* pax lets a hard link carry data: it replaces the target's content.
       * Not by writing into the target's inode, though: that inode may be
       * shared with the reference deployment, and a deployment's files are
       * never modified. The data goes into a new inode, which then takes the
       * target's name too. (Any third name of the old inode keeps the old
       * content; archives with such a chain are not seen in practice.) */
      if (!write_regular_file (w, &w->main, parent_fd, name, key, path, e, error))
        return FALSE;
      const char *target_name = target_comps[target_n - 1];
      g_autofree char *tmp = fs_temp_name ("link");
      if (linkat (parent_fd, name, target_parent_fd, tmp, 0) < 0)
        return throw_entry_errno (error, path, "linking the hard link target to the new data");
      if (renameat (target_parent_fd, tmp, target_parent_fd, target_name) < 0)
        {
          int errsv = errno;
          (void)unlinkat (target_parent_fd, tmp, 0); /* best effort: report the rename */
          errno = errsv;
          return throw_entry_errno (error, path, "linking the hard link target to the new data");
        }
      tree_writer_copy_record (w, key, target_key);
    }
  else if (e->hardlink_target != NULL)
    {
      /* No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
       * The link shares the target's inode, metadata included; chown-ing it
       * again would clear the target's security.capability. */
      if (linkat (target_parent_fd, target_comps[target_n - 1], parent_fd, name, 0) < 0)
        return throw_entry_errno (error, path, "creating hard link");
      tree_writer_copy_record (w, target_key, key);
    }
  else
    switch (type)
      {
      case NODE_DIR:
        {
          if (mkdirat (parent_fd, name, 0700) < 0)
            return throw_entry_errno (error, path, "creating directory");
          DirRecord *d = tree_writer_add_dir_record (w, key, &dir_index);
          dir_record_set (d, e);
          break;
        }
      case NODE_FILE:
        if (owned_job != NULL)
          {
            if (!tree_writer_submit (w, g_steal_pointer (&owned_job), parent_fd, name, key, path,
                                     error))
              return FALSE;
          }
        else if (!write_regular_file (w, &w->main, parent_fd, name, key, path, e, error))
          return FALSE;
        break;
      case NODE_SYMLINK:
        if (!write_symlink (w, parent_fd, name, path, e, error))
          return FALSE;
        break;
      case NODE_FIFO:
        if (!write_fifo (w, parent_fd, name, path, e, error))
          return FALSE;
        break;
      default:
        g_assert_not_reached ();
      }

  if (existing == NULL)
    {
      TreeNode *node = g_new0 (TreeNode, 1);
      node->type = type;
      node->dir_index = dir_index;
      g_hash_table_insert (w->nodes, g_steal_pointer (&key), node);
    }
  tree_writer_entry_done (w);
  return TRUE;
}

static gboolean
apply_dir_record (TreeWriter *w, DirRecord *d, int fd, gboolean ownership_pass, GError **error)
{
  const char *path = d->path[0] != '\0' ? d->path : ".";
  if (ownership_pass)
    {
      if (w->privileged && fchown (fd, d->uid, d->gid) < 0)
        return throw_entry_errno (error, path, "setting owner");
      for (guint i = 0; d->xattrs != NULL && i < d->xattrs->len; i++)
        {
          Xattr *x = d->xattrs->pdata[i];
          XattrRef ref = { x->name, x->value, x->len };
          if (!set_fd_xattrs (w, fd, path, &ref, 1, error))
            return FALSE;
        }
      return TRUE;
    }
  if (fchmod (fd, d->perm) < 0)
    return throw_entry_errno (error, path, "setting mode");
  if (d->from_image && futimens (fd, d->times) < 0)
    return throw_entry_errno (error, path, "setting times");
  return TRUE;
}

/* Directory metadata, once everything is written: deepest first (reverse
 * creation order: a directory is always created before anything inside it),
 * so no directory is entered after it got its final mode. Owner and xattrs
 * (what can fail) go in a first pass, mode and times in a second: a failure
 * then never leaves behind a read-only directory that a non-root caller could
 * not clean up. */
static gboolean
tree_writer_finish (TreeWriter *w, GError **error)
{
  for (int pass = 0; pass < 2; pass++)
    {
      gboolean ownership_pass = pass == 0;
      for (guint i = w->dirs->len; i-- > 0;)
        {
          DirRecord *d = w->dirs->pdata[i];
          if (ownership_pass && !(d->from_image && (w->privileged || d->xattrs != NULL)))
            continue;
          if (i == 0)
            {
              if (!apply_dir_record (w, d, w->root_fd, ownership_pass, error))
                return FALSE;
              continue;
            }
          g_auto (GStrv) comps = g_strsplit (d->path, "/", -1);
          guint n = g_strv_length (comps);
          int parent_fd;
          if (!tree_writer_enter (w, d->path, comps, n - 1, FALSE, &parent_fd, error))
            return FALSE;
          autofd fd
              = openat (parent_fd, comps[n - 1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0)
            return throw_entry_errno (error, d->path, "opening directory");
          if (!apply_dir_record (w, d, fd, ownership_pass, error))
            return FALSE;
        }
    }
  stack_truncate (w, 1);
  return TRUE;
}

/* ---- source: a directory ------------------------------------------------- */

typedef struct
{
  GArray *refs;       /* XattrRef, pointing into storage */
  GPtrArray *storage; /* names and values */
} XattrList;

static void
xattr_list_init (XattrList *l)
{
  l->refs = g_array_new (FALSE, FALSE, sizeof (XattrRef));
  l->storage = g_ptr_array_new_with_free_func (g_free);
}

static void
xattr_list_clear (XattrList *l)
{
  g_clear_pointer (&l->refs, g_array_unref);
  g_clear_pointer (&l->storage, g_ptr_array_unref);
}

/* Through @fd when >= 0, else the symlink @name below @dfd. */
static ssize_t
source_listxattr (int fd, int dfd, const char *name, char *buf, size_t len)
{
  return fd >= 0 ? flistxattr (fd, buf, len) : symlink_listxattr_at (dfd, name, buf, len);
}

static ssize_t
source_getxattr (int fd, int dfd, const char *name, const char *key, void *buf, size_t len)
{
  return fd >= 0 ? fgetxattr (fd, key, buf, len) : symlink_getxattr_at (dfd, name, key, buf, len);
}

/* Sizes can change between the query and the read (ERANGE): retry a few
 * times, never forever. */
#define XATTR_READ_ATTEMPTS 8

static gboolean
read_source_xattrs (int fd, int dfd, const char *name, const char *path, XattrList *list,
                    GError **error)
{
  g_autofree char *names = NULL;
  ssize_t names_len = -1;
  for (guint attempt = 0; names_len < 0; attempt++)
    {
      ssize_t size = source_listxattr (fd, dfd, name, NULL, 0);
      if (size < 0 && (errno == ENOTSUP || errno == ENOSYS))
        return TRUE; /* no xattrs on this filesystem, or symlink xattrs on an old kernel */
      if (size < 0)
        return throw_entry_errno (error, path, "listing extended attributes");
      if (size == 0)
        return TRUE;
      g_free (names);
      names = g_malloc (size);
      names_len = source_listxattr (fd, dfd, name, names, size);
      if (names_len < 0 && (errno != ERANGE || attempt + 1 >= XATTR_READ_ATTEMPTS))
        return throw_entry_errno (error, path, "listing extended attributes");
    }

  for (const char *key = names; key < names + names_len; key += strlen (key) + 1)
    {
      g_autofree void *value = NULL;
      ssize_t len = -1;
      for (guint attempt = 0; len < 0; attempt++)
        {
          ssize_t size = source_getxattr (fd, dfd, name, key, NULL, 0);
          if (size >= 0)
            {
              g_free (value);
              value = g_malloc (MAX (size, 1));
              len = source_getxattr (fd, dfd, name, key, value, size);
            }
          if (len < 0 && (size < 0 || errno != ERANGE || attempt + 1 >= XATTR_READ_ATTEMPTS))
            break;
        }
      if (len < 0 && errno == ENODATA)
        continue; /* removed since listed */
      if (len < 0)
        {
          g_autofree char *what = g_strdup_printf ("reading extended attribute %s", key);
          return throw_entry_errno (error, path, what);
        }
      char *key_copy = g_strdup (key);
      XattrRef ref = { key_copy, value, len };
      g_ptr_array_add (list->storage, key_copy);
      g_ptr_array_add (list->storage, g_steal_pointer (&value));
      g_array_append_val (list->refs, ref);
    }
  return TRUE;
}

typedef struct
{
  dev_t dev;
  ino_t ino;
} InodeKey;

static guint
inode_key_hash (gconstpointer p)
{
  const InodeKey *k = p;
  return (guint)(k->ino ^ (k->ino >> 32)) ^ (guint)k->dev;
}

static gboolean
inode_key_equal (gconstpointer a, gconstpointer b)
{
  const InodeKey *x = a, *y = b;
  return x->dev == y->dev && x->ino == y->ino;
}

typedef struct
{
  TreeWriter *w;
  struct stat dest_st; /* the destination: an image containing it is refused */
  GHashTable *links;   /* InodeKey -> path of the first link written */
  GString *path;       /* the current entry's path, for messages and the writer */
} DirSource;

typedef struct
{
  TreeWriter *w;
  FileWriter *fw; /* of the thread writing the file */
  int fd;
  gboolean sparse; /* fewer blocks than bytes: copy extent by extent */
  gboolean held;   /* fw's buffer holds the whole content (hashed already) */
} FileCopy;

/* Copies @len bytes at @offset: copy_file_range lets the kernel move the data
 * without a trip through userspace; read/write where it cannot (other
 * filesystems on old kernels, special files). */
static gboolean
copy_range (FileWriter *fw, int src_fd, int dest_fd, off_t offset, off_t len, guint64 *bytes,
            GError **error)
{
  gboolean use_cfr = TRUE;
  while (len > 0)
    {
      ssize_t n;
      if (use_cfr)
        {
          off_t in = offset, out = offset;
          n = copy_file_range (src_fd, &in, dest_fd, &out, len, 0);
          if (n < 0
              && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
            {
              use_cfr = FALSE;
              continue;
            }
        }
      else
        {
          guint8 *buf = file_writer_buffer (fw);
          n = pread (src_fd, buf, MIN ((off_t)IO_BUFFER_SIZE, len), offset);
          for (ssize_t done = 0; n > 0 && done < n;)
            {
              ssize_t m = pwrite (dest_fd, buf + done, n - done, offset + done);
              if (m < 0 && errno == EINTR)
                continue;
              if (m < 0)
                return throw_errno (error, "writing");
              done += m;
            }
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "copying");
      if (n == 0)
        return throw_error (error, STAGEHAND_ERROR_FAILED, "copying: file shrank while importing");
      offset += n;
      len -= n;
      *bytes += n;
    }
  return TRUE;
}

/* Reads the file once for its hash. A small one stays in the writer's
 * buffer, so writing it needs no second read; a larger one is copied from
 * the page cache the read just filled. */
static gboolean
copy_hash (gpointer data, guint64 size, XXH3_state_t *hash, gboolean *ret_kept, GError **error)
{
  FileCopy *c = data;
  *ret_kept = TRUE;
  c->held = FALSE;
  if (size > IO_BUFFER_SIZE || c->sparse)
    return hash_fd (c->fw, c->fd, size, hash, error);
  guint8 *buf = file_writer_buffer (c->fw);
  if (!pread_all (c->fd, buf, size, 0))
    return throw_errno (error, "reading");
  XXH3_128bits_update (hash, buf, size);
  c->held = TRUE;
  return TRUE;
}

static gboolean
copy_from_fd (gpointer data, int dest_fd, guint64 size, XXH3_state_t *hash, guint64 *bytes,
              GError **error)
{
  FileCopy *c = data;
  gboolean kept;
  if (hash != NULL && !copy_hash (data, size, hash, &kept, error))
    return FALSE;
  if (size == 0)
    return TRUE;

  /* A reflink shares the extents (and the holes) and costs nothing. */
  if (g_atomic_int_get (&c->w->try_clone))
    {
      if (ioctl (dest_fd, FICLONE, c->fd) == 0)
        {
          *bytes += size;
          return TRUE;
        }
      if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV || errno == ENOSYS)
        g_atomic_int_set (&c->w->try_clone, FALSE); /* not this filesystem pair: don't ask again */
    }

  if (c->held)
    {
      c->held = FALSE;
      if (!pwrite_all (dest_fd, file_writer_buffer (c->fw), size, 0))
        return throw_errno (error, "writing");
      *bytes += size;
      return TRUE;
    }

  gboolean sparse = c->sparse;
  off_t pos = 0;
  while (sparse && pos < (off_t)size)
    {
      /* Copy only the data extents, so holes stay holes. */
      off_t data_start = lseek (c->fd, pos, SEEK_DATA);
      if (data_start < 0 && errno == ENXIO)
        break; /* only a hole left */
      if (data_start < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
        {
          sparse = FALSE; /* no SEEK_DATA here: copy the rest as it is */
          break;
        }
      if (data_start < 0)
        return throw_errno (error, "looking for data");
      if (data_start >= (off_t)size)
        break;
      off_t hole = lseek (c->fd, data_start, SEEK_HOLE);
      if (hole < 0)
        return throw_errno (error, "looking for holes");
      hole = MIN (hole, (off_t)size);
      if (!copy_range (c->fw, c->fd, dest_fd, data_start, hole - data_start, bytes, error))
        return FALSE;
      pos = hole;
    }
  if (!sparse && !copy_range (c->fw, c->fd, dest_fd, pos, size - pos, bytes, error))
    return FALSE;
  if (ftruncate (dest_fd, size) < 0)
    return throw_errno (error, "setting the size");
  return TRUE;
}

static const ContentOps copy_ops = { copy_hash, copy_from_fd };

/* ---- workers ---------------------------------------------------------------- */

/* A regular file of a directory image for a worker to write: everything
 * write_regular_file() needs, owned. */
struct _FileJob
{
  TreeEntry e; /* e.xattrs points into xattrs, e.content_data to copy */
  XattrList xattrs;
  FileCopy copy; /* copy.fd is owned */
  int parent_fd; /* a dup of the destination directory's fd */
  char *name;
  char *key;
  char *path;
};

/* Takes over @xattrs and *@fd (leaving an empty list and -1 behind). */
static FileJob *
file_job_new (const TreeEntry *e, XattrList *xattrs, const FileCopy *copy, int *fd)
{
  FileJob *job = g_new0 (FileJob, 1);
  job->e = *e;
  job->xattrs = *xattrs;
  xattr_list_init (xattrs);
  job->copy = *copy;
  job->copy.fd = fd_steal (fd);
  job->e.content_data = &job->copy;
  job->parent_fd = -1;
  return job;
}

static void
file_job_free (FileJob *job)
{
  if (job == NULL)
    return;
  if (job->copy.fd >= 0)
    (void)close (job->copy.fd); /* read-only fd: nothing to report */
  if (job->parent_fd >= 0)
    (void)close (job->parent_fd); /* O_PATH fd: nothing to report */
  xattr_list_clear (&job->xattrs);
  g_free (job->name);
  g_free (job->key);
  g_free (job->path);
  g_free (job);
}

/* What a worker pops to stop. */
static FileJob stop_job;

static gpointer
file_worker (gpointer data)
{
  TreeWriter *w = data;
  FileWriter fw;
  file_writer_init (&fw);
  for (;;)
    {
      FileJob *job = g_async_queue_pop (w->jobs);
      if (job == &stop_job)
        break;
      g_autoptr (GError) local_error = NULL;
      /* After a failure the import is abandoned: drain the queue quickly. */
      gboolean ok = g_atomic_int_get (&w->failed);
      if (!ok)
        {
          job->copy.fw = &fw;
          ok = write_regular_file (w, &fw, job->parent_fd, job->name, job->key, job->path, &job->e,
                                   &local_error);
        }
      file_job_free (job);
      g_mutex_lock (&w->lock);
      if (!ok && w->job_error == NULL)
        {
          w->job_error = g_steal_pointer (&local_error);
          g_atomic_int_set (&w->failed, TRUE);
        }
      w->pending--;
      g_cond_broadcast (&w->job_done);
      g_mutex_unlock (&w->lock);
    }
  file_writer_clear (&fw);
  return NULL;
}

/* Why threads: writing a regular file is a handful of system calls (open,
 * read, link or create + write + chown + chmod + utimens, close) that do not
 * depend on the walk, and the walk itself is as many again (readdir, open,
 * fstat, listxattr, mkdir, ...). Two cores run both at once; see
 * docs/design.md for the numbers. */
static void
tree_writer_start_workers (TreeWriter *w)
{
  w->jobs = g_async_queue_new ();
  for (guint i = 0; i < IMPORT_WORKERS; i++)
    {
      g_autofree char *name = g_strdup_printf ("import-%u", i);
      w->workers[w->n_workers++] = g_thread_new (name, file_worker, w);
    }
}

/* Waits until every submitted file is written; the first worker's error,
 * if any. */
static gboolean
tree_writer_drain (TreeWriter *w, GError **error)
{
  if (w->n_workers == 0)
    return TRUE;
  g_mutex_lock (&w->lock);
  while (w->pending > 0)
    g_cond_wait (&w->job_done, &w->lock);
  GError *job_error = g_steal_pointer (&w->job_error);
  g_mutex_unlock (&w->lock);
  if (job_error != NULL)
    {
      g_propagate_error (error, job_error);
      return FALSE;
    }
  return TRUE;
}

/* Drains (reporting a worker's error through @error) and ends the workers.
 * With @abandon (the import failed), queued files are skipped. */
static gboolean
tree_writer_stop_workers (TreeWriter *w, gboolean abandon, GError **error)
{
  if (w->n_workers == 0)
    return TRUE;
  if (abandon)
    g_atomic_int_set (&w->failed, TRUE);
  g_autoptr (GError) local_error = NULL;
  gboolean ok = tree_writer_drain (w, &local_error);
  for (guint i = 0; i < w->n_workers; i++)
    g_async_queue_push (w->jobs, &stop_job);
  for (guint i = 0; i < w->n_workers; i++)
    g_thread_join (w->workers[i]);
  w->n_workers = 0;
  if (!ok && !abandon)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return ok;
}

/* Hands @job (consumed) to the workers, to be written as @name below
 * @parent_fd. Waits while IMPORT_MAX_PENDING jobs are queued. */
static gboolean
tree_writer_submit (TreeWriter *w, FileJob *job, int parent_fd, const char *name, const char *key,
                    const char *path, GError **error)
{
  g_autoptr (FileJob) owned = job;
  /* The walk moves on and may close @parent_fd; the worker needs its own. */
  owned->parent_fd = fcntl (parent_fd, F_DUPFD_CLOEXEC, 3);
  if (owned->parent_fd < 0)
    return throw_entry_errno (error, path, "duplicating a directory fd");
  owned->name = g_strdup (name);
  owned->key = g_strdup (key);
  owned->path = g_strdup (path);

  g_mutex_lock (&w->lock);
  while (w->pending >= IMPORT_MAX_PENDING && w->job_error == NULL)
    g_cond_wait (&w->job_done, &w->lock);
  gboolean failed = w->job_error != NULL;
  if (!failed)
    w->pending++;
  g_mutex_unlock (&w->lock);
  if (failed)
    return tree_writer_drain (w, error);
  g_async_queue_push (w->jobs, g_steal_pointer (&owned));
  return TRUE;
}

static int
open_source (int dfd, const char *name, gboolean directory)
{
  /* O_NOATIME: importing should not touch the image. Only the owner (or
   * root) may use it, hence the retry. O_NONBLOCK: if the entry became a FIFO
   * since readdir, the open must not hang. */
  int flags
      = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (directory ? O_DIRECTORY : 0);
  int fd = openat (dfd, name, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM)
    fd = openat (dfd, name, flags);
  return fd;
}

typedef struct
{
  char *name;
  unsigned char type;
  ino_t ino;
} DirListing;

static void
dir_listing_clear (gpointer p)
{
  g_free (((DirListing *)p)->name);
}

static gint
dir_listing_compare_ino (gconstpointer a, gconstpointer b)
{
  const DirListing *x = a, *y = b;
  return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static gboolean
list_source_directory (int dfd, const char *path, GArray **ret_listing, GError **error)
{
  int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd < 0)
    return throw_entry_errno (error, path, "duplicating a directory fd");
  DIR *d = fdopendir (dup_fd);
  if (d == NULL)
    {
      int errsv = errno;
      (void)close (dup_fd); /* read-only fd: nothing to report */
      errno = errsv;
      return throw_entry_errno (error, path, "listing directory");
    }
  g_autoptr (GArray) listing = g_array_new (FALSE, FALSE, sizeof (DirListing));
  g_array_set_clear_func (listing, dir_listing_clear);
  struct dirent *de;
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      DirListing l = { g_strdup (de->d_name), de->d_type, de->d_ino };
      g_array_append_val (listing, l);
    }
  int errsv = errno;
  closedir (d);
  if (errsv != 0)
    {
      errno = errsv;
      return throw_entry_errno (error, path, "listing directory");
    }
  /* Inode order reads a cold ext4/xfs tree far faster than hash order. */
  g_array_sort (listing, dir_listing_compare_ino);
  *ret_listing = g_steal_pointer (&listing);
  return TRUE;
}

/* readlinkat() into a buffer grown until the target fits (st_size can be
 * 0 on some filesystems, or stale). Sets errno on failure. */
static gboolean
read_symlink_at (int dfd, const char *name, off_t size_hint, char **ret_target)
{
  gsize size = MAX (size_hint, 63) + 1;
  for (guint attempt = 0; attempt < 8; attempt++, size *= 4)
    {
      g_autofree char *buf = g_malloc (size);
      ssize_t n = readlinkat (dfd, name, buf, size);
      if (n < 0)
        return FALSE;
      if ((gsize)n < size)
        {
          buf[n] = '\0';
          *ret_target = g_steal_pointer (&buf);
          return TRUE;
        }
    }
  errno = ENAMETOOLONG;
  return FALSE;
}

static gboolean import_source_children (DirSource *src, int dfd, GError **error);

static gboolean
import_source_entry (DirSource *src, int dfd, const DirListing *ent, GError **error)
{
  const char *path = src->path->str;
  struct stat st;
  autofd fd = -1;
  unsigned char dtype = ent->type;
  if (dtype != DT_REG && dtype != DT_DIR)
    {
      if (fstatat (dfd, ent->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return throw_entry_errno (error, path, "reading the entry");
      dtype = IFTODT (st.st_mode);
    }
  if (dtype == DT_REG || dtype == DT_DIR)
    {
      /* What we read is what the fd refers to: the stat comes from it. */
      fd = open_source (dfd, ent->name, dtype == DT_DIR);
      if (fd < 0)
        return throw_entry_errno (error, path, "opening the entry");
      if (fstat (fd, &st) < 0)
        return throw_entry_errno (error, path, "reading the entry");
    }

  TreeEntry e = {
    .perm = st.st_mode & 07777,
    .uid = st.st_uid,
    .gid = st.st_gid,
    .times = { st.st_atim, st.st_mtim },
    .size = S_ISREG (st.st_mode) ? st.st_size : 0,
  };
  switch (st.st_mode & S_IFMT)
    {
    case S_IFDIR:
      e.type = NODE_DIR;
      break;
    case S_IFREG:
      e.type = NODE_FILE;
      break;
    case S_IFLNK:
      e.type = NODE_SYMLINK;
      break;
    case S_IFIFO:
      e.type = NODE_FIFO;
      break;
    case S_IFCHR:
      e.type = NODE_CHAR_DEVICE;
      break;
    case S_IFBLK:
      e.type = NODE_BLOCK_DEVICE;
      break;
    case S_IFSOCK:
      e.type = NODE_SOCKET;
      break;
    default:
      e.type = NODE_UNKNOWN;
      break;
    }

  if (e.type == NODE_DIR && st.st_dev == src->dest_st.st_dev && st.st_ino == src->dest_st.st_ino)
    return throw_entry (error, path, "is the destination of this import");

  /* A second name of an inode already written becomes a hard link to it. */
  InodeKey inode = { st.st_dev, st.st_ino };
  gboolean may_be_linked = e.type != NODE_DIR && st.st_nlink > 1;
  if (may_be_linked)
    {
      e.hardlink_target = g_hash_table_lookup (src->links, &inode);
      if (e.hardlink_target != NULL)
        return tree_writer_add (src->w, path, &e, NULL, error);
    }

  g_autofree char *symlink_target = NULL;
  if (e.type == NODE_SYMLINK)
    {
      if (!read_symlink_at (dfd, ent->name, st.st_size, &symlink_target))
        return throw_entry_errno (error, path, "reading the symlink");
      e.symlink_target = symlink_target;
    }
  if (e.type == NODE_FIFO)
    {
      fd = openat (dfd, ent->name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
      if (fd < 0)
        return throw_entry_errno (error, path, "opening the FIFO");
    }

  XattrList xattrs;
  xattr_list_init (&xattrs);
  gboolean ok = TRUE;
  if (e.type == NODE_DIR || e.type == NODE_FILE || e.type == NODE_SYMLINK || e.type == NODE_FIFO)
    ok = read_source_xattrs (fd, dfd, ent->name, path, &xattrs, error);
  e.xattrs = (const XattrRef *)xattrs.refs->data;
  e.n_xattrs = xattrs.refs->len;

  FileCopy copy = { src->w, &src->w->main, fd, (guint64)st.st_blocks * 512 < e.size, FALSE };
  FileJob *job = NULL;
  if (e.type == NODE_FILE)
    {
      e.content = &copy_ops;
      e.content_data = &copy;
      if (ok && src->w->n_workers > 0)
        job = file_job_new (&e, &xattrs, &copy, &fd);
    }
  ok = ok && tree_writer_add (src->w, path, job != NULL ? &job->e : &e, job, error);
  xattr_list_clear (&xattrs);
  if (!ok)
    return FALSE;

  if (may_be_linked)
    g_hash_table_insert (src->links, g_memdup2 (&inode, sizeof inode), g_strdup (path));
  if (e.type == NODE_DIR)
    return import_source_children (src, fd, error);
  return TRUE;
}

static gboolean
import_source_children (DirSource *src, int dfd, GError **error)
{
  g_autoptr (GArray) listing = NULL;
  if (!list_source_directory (dfd, src->path->len > 0 ? src->path->str : ".", &listing, error))
    return FALSE;
  gsize len = src->path->len;
  for (guint i = 0; i < listing->len; i++)
    {
      const DirListing *ent = &g_array_index (listing, DirListing, i);
      if (len > 0)
        g_string_append_c (src->path, '/');
      g_string_append (src->path, ent->name);
      gboolean ok = import_source_entry (src, dfd, ent, error);
      g_string_truncate (src->path, len);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static gboolean
import_directory (TreeWriter *w, int image_fd, GError **error)
{
  DirSource src = { .w = w };
  if (fstat (w->root_fd, &src.dest_st) < 0)
    return throw_errno (error, "reading the destination directory");
  struct stat st;
  if (fstat (image_fd, &st) < 0)
    return throw_errno (error, "reading the image directory");

  /* The image root is an entry like any other, named "". */
  TreeEntry root = {
    .type = NODE_DIR,
    .perm = st.st_mode & 07777,
    .uid = st.st_uid,
    .gid = st.st_gid,
    .times = { st.st_atim, st.st_mtim },
  };
  XattrList xattrs;
  xattr_list_init (&xattrs);
  gboolean ok = read_source_xattrs (image_fd, -1, NULL, ".", &xattrs, error);
  root.xattrs = (const XattrRef *)xattrs.refs->data;
  root.n_xattrs = xattrs.refs->len;
  ok = ok && tree_writer_add (w, "", &root, NULL, error);
  xattr_list_clear (&xattrs);
  if (!ok)
    return FALSE;

  src.links = g_hash_table_new_full (inode_key_hash, inode_key_equal, g_free, g_free);
  src.path = g_string_new (NULL);
  tree_writer_start_workers (w);
  ok = import_source_children (&src, image_fd, error);
  g_hash_table_unref (src.links);
  g_string_free (src.path, TRUE);
  return ok;
}

/* ---- source: a tar stream ------------------------------------------------ */

typedef struct
{
  int64_t offset;
  size_t len;
} Extent;

typedef struct
{
  struct archive *archive;
  const char *image_path;
  TreeWriter *w;
  /* The entry's data held in memory by tar_hash() (zeros in the holes),
   * and where its data blocks are, so that writing it keeps the holes. */
  guint8 *hold;
  gsize hold_size;
  GArray *hold_extents; /* Extent */
  gboolean held;
} TarSource;

static void
tar_source_clear (TarSource *src)
{
  g_clear_pointer (&src->hold, g_free);
  g_clear_pointer (&src->hold_extents, g_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (TarSource, tar_source_clear)

static void
archive_read_freep (struct archive **ap)
{
  if (*ap != NULL)
    (void)archive_read_free (*ap); /* only fails for a wrong handle */
}

static gboolean
throw_archive (GError **error, const TarSource *src)
{
  const char *msg = archive_error_string (src->archive);
  return throw_error (error, STAGEHAND_ERROR_INVALID, "reading image %s: %s", src->image_path,
                      msg ? msg : "unknown libarchive error");
}

/* The entry's next data block and its offset; *ret_eof at the end. */
static gboolean
tar_next_block (TarSource *src, const void **ret_buf, size_t *ret_len, guint64 *ret_offset,
                gboolean *ret_eof, GError **error)
{
  la_int64_t offset;
  int r = archive_read_data_block (src->archive, ret_buf, ret_len, &offset);
  *ret_eof = r == ARCHIVE_EOF;
  if (*ret_eof)
    return TRUE;
  if (r != ARCHIVE_OK)
    return throw_archive (error, src);
  if (offset < 0)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "reading image %s: data block at a negative offset", src->image_path);
  *ret_offset = offset;
  return TRUE;
}

/* Reads the entry's data into memory and hashes it, if it is small enough
 * to hold; a large one is left in the stream for tar_copy_content(). */
static gboolean
tar_hash (gpointer data, guint64 size, XXH3_state_t *hash, gboolean *ret_kept, GError **error)
{
  TarSource *src = data;
  if (size > TAR_HOLD_MAX)
    {
      *ret_kept = FALSE;
      return TRUE;
    }
  if (src->hold_size < size)
    {
      g_free (src->hold);
      src->hold = g_malloc (size);
      src->hold_size = size;
    }
  memset (src->hold, 0, size);
  g_array_set_size (src->hold_extents, 0);
  for (;;)
    {
      const void *buf;
      size_t len;
      guint64 offset;
      gboolean eof;
      if (!tar_next_block (src, &buf, &len, &offset, &eof, error))
        return FALSE;
      if (eof)
        break;
      /* Data beyond the size is cut off, as tar_copy_content()'s truncate does. */
      if (offset >= size)
        continue;
      len = MIN (len, size - offset);
      memcpy (src->hold + offset, buf, len);
      Extent x = { offset, len };
      g_array_append_val (src->hold_extents, x);
    }
  XXH3_128bits_update (hash, src->hold, size);
  src->held = TRUE;
  *ret_kept = TRUE;
  return TRUE;
}

/* libarchive hands out the data blocks of an entry with their offsets; a
 * sparse entry's holes are the gaps between them, so writing each block at its
 * offset and truncating to the full size leaves holes as holes. The hash is
 * fed as the blocks stream by, zeros for the gaps; only blocks out of order
 * (never seen from libarchive) make it read the file back. */
static gboolean
tar_copy_content (gpointer data, int fd, guint64 size, XXH3_state_t *hash, guint64 *bytes,
                  GError **error)
{
  TarSource *src = data;
  if (src->held)
    {
      src->held = FALSE;
      for (guint i = 0; i < src->hold_extents->len; i++)
        {
          const Extent *x = &g_array_index (src->hold_extents, Extent, i);
          if (!pwrite_all (fd, src->hold + x->offset, x->len, x->offset))
            return throw_errno (error, "writing");
          *bytes += x->len;
        }
      if (ftruncate (fd, size) < 0)
        return throw_errno (error, "setting the size");
      return TRUE;
    }

  guint64 hashed = 0;
  gboolean in_order = TRUE;
  for (;;)
    {
      const void *buf;
      size_t len;
      guint64 offset;
      gboolean eof;
      if (!tar_next_block (src, &buf, &len, &offset, &eof, error))
        return FALSE;
      if (eof)
        break;
      if (!pwrite_all (fd, buf, len, offset))
        return throw_errno (error, "writing");
      *bytes += len;
      if (hash == NULL || !in_order || offset >= size)
        continue;
      if (offset < hashed)
        {
          in_order = FALSE;
          continue;
        }
      gsize n = MIN (len, size - offset);
      hash_zeros (hash, offset - hashed);
      XXH3_128bits_update (hash, buf, n);
      hashed = offset + n;
    }
  if (ftruncate (fd, size) < 0)
    return throw_errno (error, "setting the size");
  if (hash != NULL && in_order)
    hash_zeros (hash, size - hashed);
  else if (hash != NULL)
    {
      XXH3_128bits_reset (hash);
      return hash_fd (&src->w->main, fd, size, hash, error);
    }
  return TRUE;
}

static gboolean
tar_entry_id (const char *path, const char *what, la_int64_t value, guint32 *ret_id, GError **error)
{
  /* (uid_t)-1 means "leave unchanged" to chown(): not a valid owner. */
  if (value < 0 || value >= (la_int64_t)G_MAXUINT32)
    return throw_entry (error, path, "%s %" G_GINT64_FORMAT " is out of range", what,
                        (gint64)value);
  *ret_id = (guint32)value;
  return TRUE;
}

/* libarchive warns when it cannot convert a pax (UTF-8) name to the current
 * locale and then keeps the bytes as stored: that is the byte-for-byte name
 * we want, so that one warning is not an error. Every other warning is (a
 * malformed pax header can lose the real name or size of an entry). */
static gboolean
is_name_conversion_warning (struct archive *a)
{
  const char *msg = archive_error_string (a);
  return archive_errno (a) == IMPORT_ARCHIVE_ERRNO_FILE_FORMAT && msg != NULL
         && strstr (msg, "can't be converted") != NULL;
}

static gboolean
import_tar_entry (TreeWriter *w, TarSource *src, struct archive_entry *entry, GError **error)
{
  const char *path = archive_entry_pathname (entry);
  if (path == NULL)
    return throw_error (error, STAGEHAND_ERROR_INVALID, "reading image %s: an entry has no name",
                        src->image_path);

  TreeEntry e = { .perm = archive_entry_perm (entry) & 07777 };
  if (!tar_entry_id (path, "owner", archive_entry_uid (entry), &e.uid, error)
      || !tar_entry_id (path, "group", archive_entry_gid (entry), &e.gid, error))
    return FALSE;
  e.times[0].tv_nsec = UTIME_OMIT;
  e.times[1].tv_nsec = UTIME_OMIT;
  if (archive_entry_atime_is_set (entry))
    e.times[0] = (struct timespec){ archive_entry_atime (entry), archive_entry_atime_nsec (entry) };
  if (archive_entry_mtime_is_set (entry))
    e.times[1] = (struct timespec){ archive_entry_mtime (entry), archive_entry_mtime_nsec (entry) };
  la_int64_t size = archive_entry_size_is_set (entry) ? archive_entry_size (entry) : 0;
  e.size = MAX (size, 0);

  e.hardlink_target = archive_entry_hardlink (entry);
  if (e.hardlink_target != NULL)
    e.type = NODE_FILE; /* the writer takes the type of the target */
  else
    switch (archive_entry_filetype (entry))
      {
      case AE_IFREG:
        e.type = NODE_FILE;
        break;
      case AE_IFDIR:
        e.type = NODE_DIR;
        break;
      case AE_IFLNK:
        e.type = NODE_SYMLINK;
        e.symlink_target = archive_entry_symlink (entry);
        break;
      case AE_IFIFO:
        e.type = NODE_FIFO;
        break;
      case AE_IFCHR:
        e.type = NODE_CHAR_DEVICE;
        break;
      case AE_IFBLK:
        e.type = NODE_BLOCK_DEVICE;
        break;
      case AE_IFSOCK:
        e.type = NODE_SOCKET;
        break;
      default:
        e.type = NODE_UNKNOWN;
        break;
      }
  static const ContentOps tar_ops = { tar_hash, tar_copy_content };
  src->held = FALSE;
  if (e.type == NODE_FILE && (e.hardlink_target == NULL || e.size > 0))
    {
      e.content = &tar_ops;
      e.content_data = src;
    }

  /* pax SCHILY.xattr.* and LIBARCHIVE.xattr.* records, as GNU tar --xattrs
   * and bsdtar write them; the pointers live until the next header. */
  g_autoptr (GArray) xattrs = g_array_new (FALSE, FALSE, sizeof (XattrRef));
  archive_entry_xattr_reset (entry);
  XattrRef x;
  while (archive_entry_xattr_next (entry, &x.name, &x.value, &x.len) == ARCHIVE_OK)
    g_array_append_val (xattrs, x);
  e.xattrs = (const XattrRef *)xattrs->data;
  e.n_xattrs = xattrs->len;

  return tree_writer_add (w, path, &e, NULL, error);
}

static gboolean
import_tar_entries (TreeWriter *w, int image_fd, const char *image_path, GError **error)
{
  __attribute__ ((cleanup (archive_read_freep))) struct archive *a = archive_read_new ();
  if (a == NULL)
    return throw_error (error, STAGEHAND_ERROR_FAILED, "reading image %s: out of memory",
                        image_path);
  g_auto (TarSource) src = {
    .archive = a,
    .image_path = image_path,
    .w = w,
    .hold_extents = g_array_new (FALSE, FALSE, sizeof (Extent)),
  };
  if (archive_read_support_filter_all (a) != ARCHIVE_OK
      || archive_read_support_format_tar (a) != ARCHIVE_OK)
    return throw_archive (error, &src);

  /* A stream: libarchive reads the fd front to back, so a FIFO works. */
  if (archive_read_open_fd (a, image_fd, IO_BUFFER_SIZE) != ARCHIVE_OK)
    {
      const char *msg = archive_error_string (a);
      if (archive_errno (a) == IMPORT_ARCHIVE_ERRNO_FILE_FORMAT)
        return throw_error (error, STAGEHAND_ERROR_INVALID,
                            "reading image %s: not a tar archive (%s)", image_path,
                            msg ? msg : "unknown format");
      return throw_archive (error, &src);
    }

  for (;;)
    {
      struct archive_entry *entry;
      int r = archive_read_next_header (a, &entry);
      if (r == ARCHIVE_EOF)
        break;
      if (r != ARCHIVE_OK && !(r == ARCHIVE_WARN && is_name_conversion_warning (a)))
        return throw_archive (error, &src);
      if (!import_tar_entry (w, &src, entry, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
import_tar (TreeWriter *w, int image_fd, const char *image_path, GError **error)
{
  /* libarchive converts pax names (UTF-8 by definition) to the charset of
   * the current locale. In the C locale that fails for any non-ASCII byte and
   * libarchive keeps the stored bytes, exactly what a byte-for-byte copy
   * needs; in, say, a Latin-1 locale it would silently re-encode names. So the
   * archive is read under the C locale, whatever the process uses
   * (uselocale() is per thread). */
  locale_t c_locale = newlocale (LC_ALL_MASK, "C", (locale_t)0);
  if (c_locale == (locale_t)0)
    return throw_errno (error, "reading image %s: creating the C locale", image_path);
  locale_t previous = uselocale (c_locale);
  gboolean ok = import_tar_entries (w, image_fd, image_path, error);
  uselocale (previous);
  freelocale (c_locale);
  return ok;
}

/* ---- entry point ----------------------------------------------------------- */

static gboolean
import_into (int image_fd, const struct stat *image_st, const char *image_path, int dest_parent_dfd,
             const char *dest_name, const ImportOptions *options, Manifest **ret_manifest,
             GError **error)
{
  autofd root_fd
      = openat (dest_parent_dfd, dest_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd < 0)
    return throw_errno (error, "opening %s", dest_name);

  TreeWriter w;
  tree_writer_init (&w, root_fd, options);
  if (ret_manifest != NULL || w.ref_manifest != NULL)
    w.manifest = manifest_new ();
  gboolean ok;
  if (S_ISDIR (image_st->st_mode))
    ok = import_directory (&w, image_fd, error);
  else
    ok = import_tar (&w, image_fd, image_path, error);
  /* Every file written (or the workers gone) before the directories get
   * their final modes, and before a failed import's tree is removed. */
  ok = tree_writer_stop_workers (&w, !ok, error) && ok;
  ok = ok && tree_writer_finish (&w, error);
  if (ok)
    {
      w.progress.done = TRUE;
      tree_writer_report (&w);
      if (ret_manifest != NULL)
        *ret_manifest = g_steal_pointer (&w.manifest);
    }
  tree_writer_clear (&w);
  return ok;
}

gboolean
image_import (const char *image_path, int dest_parent_dfd, const char *dest_name,
              const ImportOptions *options, GError **error)
{
  return image_import_with_manifest (image_path, dest_parent_dfd, dest_name, options, NULL, error);
}

gboolean
image_import_with_manifest (const char *image_path, int dest_parent_dfd, const char *dest_name,
                            const ImportOptions *options, Manifest **ret_manifest, GError **error)
{
  static const ImportOptions default_options = IMPORT_OPTIONS_INIT;
  if (options == NULL)
    options = &default_options;

  /* A FIFO blocks here until a writer opens it: that is what streaming an
   * image means. */
  autofd image_fd = open (image_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (image_fd < 0)
    return throw_errno (error, "opening image %s", image_path);
  struct stat image_st;
  if (fstat (image_fd, &image_st) < 0)
    return throw_errno (error, "opening image %s", image_path);
  if (!S_ISDIR (image_st.st_mode) && !S_ISREG (image_st.st_mode) && !S_ISFIFO (image_st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "opening image %s: not a directory, a regular file or a FIFO", image_path);

  /* mkdirat() is the existence check: it fails if anything is there. */
  if (mkdirat (dest_parent_dfd, dest_name, 0700) < 0)
    return throw_errno (error, "creating %s", dest_name);

  g_autoptr (GError) local_error = NULL;
  if (import_into (image_fd, &image_st, image_path, dest_parent_dfd, dest_name, options,
                   ret_manifest, &local_error))
    return TRUE;

  /* Nothing may be left behind: a half-written tree is not a deployment. */
  g_autoptr (GError) cleanup_error = NULL;
  if (!fs_rm_rf_at (dest_parent_dfd, dest_name, &cleanup_error))
    g_prefix_error (&local_error, "(removing the partial tree %s failed too: %s) ", dest_name,
                    cleanup_error->message);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

/* The writer of an imported tree; the sources that feed it are
 * import-dir.c and import-tar.c.
 *
 * The writer is the only code that touches the destination, and it does so
 * relative to directory fds: every directory on the way to an entry is opened
 * with O_NOFOLLOW|O_DIRECTORY, one component at a time, so an image that
 * plants a symlink `a -> /etc` and then writes `a/passwd` is refused instead
 * of followed. It also keeps a table of what it has written, which gives
 * hostile archives a precise message ("path goes through the symlink "a"")
 * before the kernel would give a bare ELOOP, and which is how hard link
 * targets are checked ("an entry written earlier").
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
 */
#include "config.h"

#include "import-private.h"
#include "fsutil.h"
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

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
  TreeNode *node;
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
  g_clear_pointer (&d->xattrs, g_ptr_array_unref);
  g_free (d);
}

void
tree_writer_init (TreeWriter *w, int root_fd, const ImportOptions *options)
{
  memset (w, 0, sizeof *w);
  w->root_fd = root_fd;
  w->privileged = geteuid () == 0;
  tree_nodes_init (w);
  w->ref_linked = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_mutex_init (&w->ref_linked_lock);
  w->dirs = g_ptr_array_new_with_free_func (dir_record_free);
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
  rootrec->node = w->root_node;
  rootrec->perm = 0755;
  g_ptr_array_add (w->dirs, rootrec);
}

void
tree_writer_clear (TreeWriter *w)
{
  g_clear_pointer (&w->ref_linked, g_hash_table_unref);
  g_mutex_clear (&w->ref_linked_lock);
  g_clear_pointer (&w->dirs, g_ptr_array_unref);
  tree_nodes_clear (w);
  g_clear_pointer (&w->manifest, manifest_free);
  file_writer_clear (&w->main);
  g_assert (w->n_workers == 0 && w->flusher == NULL);
  g_clear_pointer (&w->jobs, g_async_queue_unref);
  g_clear_error (&w->job_error);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->job_done);
}

void
tree_writer_report (TreeWriter *w)
{
  if (w->options->progress == NULL)
    return;
  ImportProgress snapshot = {
    .files = w->progress.files,
    .bytes = __atomic_load_n (&w->progress.bytes, __ATOMIC_RELAXED),
    .linked_files = __atomic_load_n (&w->progress.linked_files, __ATOMIC_RELAXED),
    .linked_bytes = __atomic_load_n (&w->progress.linked_bytes, __ATOMIC_RELAXED),
    .devices_skipped = w->progress.devices_skipped,
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
        return import_throw_entry (error, entry_path, "absolute path");
      g_autofree char *escaped = import_escape_name (path);
      return import_throw_entry (error, entry_path, "%s \"%s\" is an absolute path", what, escaped);
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
            return import_throw_entry (error, entry_path, "path leaves the image (\"..\")");
          g_autofree char *escaped = import_escape_name (path);
          return import_throw_entry (error, entry_path, "%s \"%s\" leaves the image (\"..\")", what,
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

static void
tree_writer_add_dir_record (TreeWriter *w, TreeNode *node)
{
  DirRecord *d = g_new0 (DirRecord, 1);
  d->node = node;
  d->perm = 0755;
  d->times[0].tv_nsec = UTIME_OMIT;
  d->times[1].tv_nsec = UTIME_OMIT;
  node->dir_index = w->dirs->len;
  g_ptr_array_add (w->dirs, d);
}

/* Makes the stack hold the root and the directories @comps[0..@n-1] below
 * it, and returns the fd of the deepest (owned by the stack, valid until
 * the next call) and its node. Each component must be a directory written
 * earlier, or is created now as an implicit parent (tar archives need not
 * list every directory). Every component is opened with O_NOFOLLOW: even
 * if the table were wrong, a symlink is never followed. */
static gboolean
tree_writer_enter_creating (TreeWriter *w, const char *entry_path, char **comps, guint n,
                            TreeNode **ret_dir, int *ret_fd, GError **error)
{
  TreeNode *dir = w->root_node;
  guint i = 0;
  for (; i < n; i++)
    {
      TreeNode *child = tree_node_child (w, dir, comps[i]);
      if (child == NULL)
        break;
      if (child->type != NODE_DIR)
        {
          g_autofree char *key = join_components (comps, i + 1);
          g_autofree char *escaped = import_escape_name (key);
          if (child->type == NODE_SYMLINK)
            return import_throw_entry (error, entry_path, "path goes through the symlink \"%s\"",
                                       escaped);
          return import_throw_entry (error, entry_path, "path goes through \"%s\", which is a %s",
                                     escaped, node_type_name (child->type));
        }
      dir = child;
    }
  int fd;
  if (!tree_writer_enter_node (w, entry_path, dir, &fd, error))
    return FALSE;
  for (; i < n; i++)
    {
      if (mkdirat (fd, comps[i], 0700) < 0)
        return import_throw_entry_errno (error, entry_path, "creating a parent directory");
      dir = tree_node_add (w, dir, comps[i], NODE_DIR);
      tree_writer_add_dir_record (w, dir);
      if (!tree_writer_push_dir (w, entry_path, dir, &fd, error))
        return FALSE;
    }
  *ret_dir = dir;
  *ret_fd = fd;
  return TRUE;
}

/* trusted.* and security.* need CAP_SYS_ADMIN / CAP_SETFCAP: skipped when not
 * running as root (see the top of this file). */
gboolean
tree_writer_xattr_settable (TreeWriter *w, const char *name)
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
      if (!tree_writer_xattr_settable (w, xattrs[i].name))
        continue;
      if (fsetxattr (fd, xattrs[i].name, xattrs[i].value, xattrs[i].len, 0) < 0)
        {
          g_autofree char *what = g_strdup_printf ("setting extended attribute %s", xattrs[i].name);
          return import_throw_entry_errno (error, path, what);
        }
    }
  return TRUE;
}

/* Ownership, xattrs, mode and times of a regular file or FIFO, in the order
 * explained at the top of this file. */
gboolean
tree_writer_apply_fd_metadata (TreeWriter *w, int fd, const char *path, const TreeEntry *e,
                               GError **error)
{
  if (w->privileged && fchown (fd, e->uid, e->gid) < 0)
    return import_throw_entry_errno (error, path, "setting owner");
  if (!set_fd_xattrs (w, fd, path, e->xattrs, e->n_xattrs, error))
    return FALSE;
  if (fchmod (fd, e->perm) < 0)
    return import_throw_entry_errno (error, path, "setting mode");
  if (futimens (fd, e->times) < 0)
    return import_throw_entry_errno (error, path, "setting times");
  return TRUE;
}

static gboolean
write_symlink (TreeWriter *w, int parent_fd, const char *name, const char *path, const TreeEntry *e,
               GError **error)
{
  if (e->symlink_target == NULL || e->symlink_target[0] == '\0')
    return import_throw_entry (error, path, "symlink without a target");
  /* The target is stored as it is, absolute, dangling or with "..": it is
   * never followed here, and inside the deployment it means what it means on
   * the booted system. */
  if (symlinkat (e->symlink_target, parent_fd, name) < 0)
    return import_throw_entry_errno (error, path, "creating symlink");
  if (w->privileged && fchownat (parent_fd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return import_throw_entry_errno (error, path, "setting owner");
  for (guint i = 0; i < e->n_xattrs; i++)
    {
      const XattrRef *x = &e->xattrs[i];
      if (!tree_writer_xattr_settable (w, x->name))
        continue;
      if (import_symlink_setxattr_at (parent_fd, name, x->name, x->value, x->len) < 0)
        {
          /* Kernel older than 6.13: no way to reach a symlink's xattrs
           * through a held fd (see import_symlink_setxattr_at); skip them. */
          if (errno == ENOSYS)
            break;
          g_autofree char *what = g_strdup_printf ("setting extended attribute %s", x->name);
          return import_throw_entry_errno (error, path, what);
        }
    }
  if (utimensat (parent_fd, name, e->times, AT_SYMLINK_NOFOLLOW) < 0)
    return import_throw_entry_errno (error, path, "setting times");
  return TRUE;
}

static gboolean
write_fifo (TreeWriter *w, int parent_fd, const char *name, const char *path, const TreeEntry *e,
            GError **error)
{
  if (mknodat (parent_fd, name, S_IFIFO | 0600, 0) < 0)
    return import_throw_entry_errno (error, path, "creating FIFO");
  /* Opening a FIFO for reading with O_NONBLOCK returns at once, writer or
   * not, and gives a real fd for fchown/fchmod/fsetxattr/futimens. */
  autofd fd = openat (parent_fd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return import_throw_entry_errno (error, path, "opening the new FIFO");
  return tree_writer_apply_fd_metadata (w, fd, path, e, error);
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

/* A device node is skipped under the image's top-level dev/ (TRUE), and
 * check_entry_type() refuses it anywhere else. Root trees made by
 * mmdebstrap, debootstrap or `docker export` hold dev/null, dev/console and
 * friends; at boot /dev is a devtmpfs over them, so they are useless there,
 * and never created. Under usr/ (or anywhere else) a device node would
 * hand out raw hardware access: the image is refused. */
static gboolean
tree_writer_skip_device (TreeWriter *w, const char *path, const TreeEntry *e)
{
  if (e->type != NODE_CHAR_DEVICE && e->type != NODE_BLOCK_DEVICE)
    return FALSE;
  g_auto (GStrv) comps = NULL;
  /* A path that does not split is refused by tree_writer_add(), below. */
  if (!split_image_path (path, path, NULL, &comps, NULL))
    return FALSE;
  if (g_strv_length (comps) < 2 || !g_str_equal (comps[0], "dev"))
    return FALSE;
  w->progress.devices_skipped++;
  tree_writer_report (w);
  return TRUE;
}

/* An entry's type refused before anything else, with one message per kind
 * for both sources. */
static gboolean
check_entry_type (const char *path, NodeType type, GError **error)
{
  switch (type)
    {
    case NODE_CHAR_DEVICE:
    case NODE_BLOCK_DEVICE:
      return import_throw_entry (error, path,
                                 "%s nodes are not allowed in an image (except under /dev)",
                                 type == NODE_CHAR_DEVICE ? "character device" : "block device");
    case NODE_SOCKET:
      return import_throw_entry (error, path, "sockets are not allowed in an image");
    case NODE_UNKNOWN:
      return import_throw_entry (error, path, "unsupported entry type");
    case NODE_DIR:
    case NODE_FILE:
    case NODE_SYMLINK:
    case NODE_FIFO:
      break;
    }
  return TRUE;
}

/* A hard link's target: an entry written earlier, not a directory, not the
 * link itself. */
typedef struct
{
  char **comps;
  guint n;
  char *key;
  TreeNode *node;
} LinkTarget;

static void
link_target_clear (LinkTarget *t)
{
  g_clear_pointer (&t->comps, g_strfreev);
  g_clear_pointer (&t->key, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (LinkTarget, link_target_clear)

static gboolean
resolve_link_target (TreeWriter *w, const char *path, const TreeEntry *e, const char *key,
                     LinkTarget *ret_target, GError **error)
{
  if (!split_image_path (path, e->hardlink_target, "hard link target", &ret_target->comps, error))
    return FALSE;
  ret_target->n = g_strv_length (ret_target->comps);
  ret_target->key = join_components (ret_target->comps, ret_target->n);
  g_autofree char *escaped_target = import_escape_name (e->hardlink_target);
  TreeNode *target = tree_node_lookup (w, ret_target->comps, ret_target->n);
  if (ret_target->n == 0 || (target != NULL && target->type == NODE_DIR))
    return import_throw_entry (error, path, "hard link target \"%s\" is a directory",
                               escaped_target);
  if (strcmp (ret_target->key, key) == 0)
    return import_throw_entry (error, path, "hard link to itself");
  if (target == NULL)
    return import_throw_entry (
        error, path, "hard link target \"%s\" is not an entry written earlier in the image",
        escaped_target);
  if (e->content != NULL && target->type != NODE_FILE)
    return import_throw_entry (error, path, "hard link with data to \"%s\", which is a %s",
                               escaped_target, node_type_name (target->type));
  ret_target->node = target;
  return TRUE;
}

/* A hard link, as @name below @parent_fd; the target's parent is
 * @target_parent_fd. */
static gboolean
write_hard_link (TreeWriter *w, int parent_fd, const char *name, const char *key, const char *path,
                 const TreeEntry *e, const LinkTarget *target, int target_parent_fd, GError **error)
{
  const char *target_name = target->node->name;
  if (e->content == NULL)
    {
      /* No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
       * The link shares the target's inode, metadata included; chown-ing it
       * again would clear the target's security.capability. */
      if (linkat (target_parent_fd, target_name, parent_fd, name, 0) < 0)
        return import_throw_entry_errno (error, path, "creating hard link");
      tree_writer_copy_record (w, target->key, key);
      return TRUE;
    }
  /* pax lets a hard link carry data: it replaces the target's content.
   * Not by writing into the target's inode, though: that inode may be
   * shared with the reference deployment, and a deployment's files are
   * never modified. The data goes into a new inode, which then takes the
   * target's name too. (Any third name of the old inode keeps the old
   * content; archives with such a chain are not seen in practice.) */
  if (!tree_writer_write_regular_file (w, &w->main, parent_fd, name, key, path, e, error))
    return FALSE;
  g_autofree char *tmp = fs_temp_name ("link");
  if (linkat (parent_fd, name, target_parent_fd, tmp, 0) < 0)
    return import_throw_entry_errno (error, path, "linking the hard link target to the new data");
  if (renameat (target_parent_fd, tmp, target_parent_fd, target_name) < 0)
    {
      int errsv = errno;
      (void)unlinkat (target_parent_fd, tmp, 0); /* best effort: report the rename */
      errno = errsv;
      return import_throw_entry_errno (error, path, "linking the hard link target to the new data");
    }
  tree_writer_copy_record (w, key, target->key);
  return TRUE;
}

/* A new entry that is not a hard link, as @name below @parent_fd. A new
 * directory's node is @node (its record is made here). */
static gboolean
write_new_entry (TreeWriter *w, int parent_fd, const char *name, const char *key, const char *path,
                 const TreeEntry *e, FileJob **job, TreeNode *node, GError **error)
{
  switch (e->type)
    {
    case NODE_DIR:
      if (mkdirat (parent_fd, name, 0700) < 0)
        return import_throw_entry_errno (error, path, "creating directory");
      tree_writer_add_dir_record (w, node);
      dir_record_set (w->dirs->pdata[node->dir_index], e);
      return TRUE;
    case NODE_FILE:
      if (*job != NULL)
        return tree_writer_submit (w, g_steal_pointer (job), parent_fd, name, key, path, error);
      return tree_writer_write_regular_file (w, &w->main, parent_fd, name, key, path, e, error);
    case NODE_SYMLINK:
      return write_symlink (w, parent_fd, name, path, e, error);
    case NODE_FIFO:
      return write_fifo (w, parent_fd, name, path, e, error);
    default:
      g_assert_not_reached ();
    }
}

/* Writes one entry. @path is the entry's name in the image, as the source
 * gives it (raw bytes, not yet checked). A regular file comes with @job
 * (consumed) when a worker is to write it. */
gboolean
tree_writer_add (TreeWriter *w, const char *path, const TreeEntry *e, FileJob *job, GError **error)
{
  g_autoptr (FileJob) owned_job = job;
  if (tree_writer_skip_device (w, path, e))
    return TRUE;
  if (!check_entry_type (path, e->type, error))
    return FALSE;

  g_auto (GStrv) comps = NULL;
  if (!split_image_path (path, path, NULL, &comps, error))
    return FALSE;
  guint n = g_strv_length (comps);
  if (n == 0)
    {
      if (e->type != NODE_DIR || e->hardlink_target != NULL)
        return import_throw_entry (error, path, "the image root must be a directory, not a %s",
                                   e->hardlink_target ? "hard link" : node_type_name (e->type));
      dir_record_set (w->dirs->pdata[0], e);
      tree_writer_entry_done (w);
      return TRUE;
    }
  g_autofree char *key = join_components (comps, n);

  NodeType type = e->type;
  g_auto (LinkTarget) target = { 0 };
  if (e->hardlink_target != NULL)
    {
      if (!resolve_link_target (w, path, e, key, &target, error))
        return FALSE;
      type = target.node->type;
    }

  TreeNode *existing = tree_node_lookup (w, comps, n);
  /* A worker may still be writing the target, or the entry replaced. */
  if ((e->hardlink_target != NULL || existing != NULL) && !tree_writer_drain (w, error))
    return FALSE;
  if (existing != NULL && existing->type != type)
    {
      if (existing->type == NODE_DIR)
        return import_throw_entry (error, path, "would replace a directory with a %s",
                                   node_type_name (type));
      return import_throw_entry (error, path,
                                 "duplicate entry of a different type (a %s, then a %s)",
                                 node_type_name (existing->type), node_type_name (type));
    }

  autofd target_parent_fd = -1;
  if (e->hardlink_target != NULL)
    {
      /* The target was written through checked directories, so its parents
       * need no checks now; the entry's own parents are entered next, and the
       * stack holds one path at a time, hence the dup. */
      int fd;
      if (!tree_writer_enter_node (w, path, target.node->parent, &fd, error))
        return FALSE;
      target_parent_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
      if (target_parent_fd < 0)
        return import_throw_entry_errno (error, path, "duplicating a directory fd");
    }

  TreeNode *parent = NULL;
  int parent_fd = -1;
  if (!tree_writer_enter_creating (w, path, comps, n - 1, &parent, &parent_fd, error))
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
    return import_throw_entry_errno (error, path, "replacing an earlier entry of the same name");

  TreeNode *node = existing != NULL ? existing : tree_node_add (w, parent, name, type);
  gboolean ok;
  if (e->hardlink_target != NULL)
    ok = write_hard_link (w, parent_fd, name, key, path, e, &target, target_parent_fd, error);
  else
    ok = write_new_entry (w, parent_fd, name, key, path, e, &owned_job, node, error);
  if (!ok)
    return FALSE;
  tree_writer_entry_done (w);
  return TRUE;
}

/* The name of @d in messages (computed only then: see tree-writer-nodes.c). */
static char *
dir_record_path (const DirRecord *d)
{
  char *path = tree_node_path (d->node);
  if (path[0] != '\0')
    return path;
  g_free (path);
  return g_strdup (".");
}

static gboolean
throw_dir_errno (GError **error, const DirRecord *d, const char *what)
{
  int errsv = errno;
  g_autofree char *path = dir_record_path (d);
  errno = errsv;
  return import_throw_entry_errno (error, path, what);
}

static gboolean
apply_dir_record (TreeWriter *w, DirRecord *d, int fd, gboolean ownership_pass, GError **error)
{
  if (ownership_pass)
    {
      if (w->privileged && fchown (fd, d->uid, d->gid) < 0)
        return throw_dir_errno (error, d, "setting owner");
      if (d->xattrs == NULL)
        return TRUE;
      /* Only directories listed in the image have xattrs, each with its
       * own path in the image: naming it costs what the image did. */
      g_autofree char *path = dir_record_path (d);
      for (guint i = 0; i < d->xattrs->len; i++)
        {
          Xattr *x = d->xattrs->pdata[i];
          XattrRef ref = { x->name, x->value, x->len };
          if (!set_fd_xattrs (w, fd, path, &ref, 1, error))
            return FALSE;
        }
      return TRUE;
    }
  if (fchmod (fd, d->perm) < 0)
    return throw_dir_errno (error, d, "setting mode");
  if (d->from_image && futimens (fd, d->times) < 0)
    return throw_dir_errno (error, d, "setting times");
  return TRUE;
}

/* Directory metadata, once everything is written: deepest first (reverse
 * creation order: a directory is always created before anything inside it),
 * so no directory is entered after it got its final mode. Owner and xattrs
 * (what can fail) go in a first pass, mode and times in a second: a failure
 * then never leaves behind a read-only directory that a non-root caller could
 * not clean up. */
gboolean
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
          int parent_fd;
          if (!tree_writer_enter_node (w, NULL, d->node->parent, &parent_fd, error))
            return FALSE;
          autofd fd
              = openat (parent_fd, d->node->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0)
            return throw_dir_errno (error, d, "opening directory");
          if (!apply_dir_record (w, d, fd, ownership_pass, error))
            return FALSE;
        }
    }
  tree_writer_leave (w);
  return TRUE;
}

/* The /etc merge: plan (pure), then apply (see etc-merge.h). */
#include "config.h"

#include "errors.h"
#include "etc-private.h"
#include "import-private.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static void
etc_merge_item_free (EtcMergeItem *item)
{
  g_free (item->path);
  g_free (item);
}

void
etc_merge_plan_free (EtcMergePlan *plan)
{
  if (plan == NULL)
    return;
  g_ptr_array_unref (plan->items);
  g_hash_table_unref (plan->by_path);
  g_free (plan);
}

static gboolean
is_dir (const EtcEntry *e)
{
  return e != NULL && e->type == MANIFEST_TYPE_DIR;
}

/* A directory's own metadata, without what is below it. */
static gboolean
dir_meta_equal (const EtcEntry *a, const EtcEntry *b)
{
  return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid
         && memcmp (a->xattr_hash, b->xattr_hash, MANIFEST_HASH_LEN) == 0;
}

static void
add_keys (GHashTable *set, const EtcTree *tree)
{
  if (tree == NULL)
    return;
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, etc_tree_entries (tree));
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_add (set, key);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static GPtrArray *
sorted_keys (GHashTable *set)
{
  GPtrArray *paths = g_ptr_array_sized_new (g_hash_table_size (set));
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, set);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (paths, key);
  g_ptr_array_sort (paths, compare_strings);
  return paths;
}

static GPtrArray *
sorted_union (const EtcTree *a, const EtcTree *b, const EtcTree *c)
{
  g_autoptr (GHashTable) set = g_hash_table_new (g_str_hash, g_str_equal);
  add_keys (set, a);
  add_keys (set, b);
  add_keys (set, c);
  return sorted_keys (set);
}

/* TRUE if @path is @dir or below it. */
static gboolean
path_is_within (const char *path, const char *dir)
{
  gsize len = strlen (dir);
  return strncmp (path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static const char *
conflict_reason (const EtcEntry *o, const EtcEntry *l, const EtcEntry *n)
{
  if (l == NULL)
    return "removed locally, changed by the new image";
  if (n == NULL)
    return o == NULL || is_dir (l) ? "the new image removed it; kept for the local changes"
                                   : "changed locally, removed by the new image";
  if (o == NULL)
    return "added locally and by the new image";
  if (l->type != n->type)
    return l->type == MANIFEST_TYPE_DIR || n->type == MANIFEST_TYPE_DIR
               ? "a file on one side, a directory on the other"
               : "changed locally and by the new image, to different types";
  return "changed locally and by the new image";
}

EtcMergePlan *
etc_merge_plan (const EtcTree *pristine, const EtcTree *running, const EtcTree *new_tree)
{
  /* Without a pristine record, the new image's version stands in for it
   * wherever the running system has the path: whatever differs from it is
   * then carried, and nothing counts as removed. */
  g_autoptr (EtcTree) stand_in = NULL;
  if (pristine == NULL)
    {
      stand_in = etc_tree_new ();
      GHashTableIter iter;
      gpointer key;
      g_hash_table_iter_init (&iter, etc_tree_entries (running));
      while (g_hash_table_iter_next (&iter, &key, NULL))
        {
          const EtcEntry *n = etc_tree_lookup (new_tree, key);
          if (n != NULL)
            etc_tree_add (stand_in, n);
        }
      pristine = stand_in;
    }

  g_autoptr (GPtrArray) paths = sorted_union (pristine, running, new_tree);
  /* Directories with a local change somewhere below them. */
  g_autoptr (GHashTable) changed_below
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < paths->len; i++)
    {
      const char *p = paths->pdata[i];
      if (etc_entry_equal (etc_tree_lookup (pristine, p), etc_tree_lookup (running, p)))
        continue;
      g_autofree char *dir = g_strdup (p);
      for (char *slash; (slash = strrchr (dir, '/')) != NULL;)
        {
          *slash = '\0';
          if (!g_hash_table_add (changed_below, g_strdup (dir)))
            break;
        }
    }

  EtcMergePlan *plan = g_new0 (EtcMergePlan, 1);
  plan->items = g_ptr_array_new_with_free_func ((GDestroyNotify)etc_merge_item_free);
  plan->by_path = g_hash_table_new (g_str_hash, g_str_equal);
  const char *blocked = NULL; /* carried as absent or not a directory: nothing below */
  for (guint i = 0; i < paths->len; i++)
    {
      const char *p = paths->pdata[i];
      const EtcEntry *o = etc_tree_lookup (pristine, p);
      const EtcEntry *l = etc_tree_lookup (running, p);
      const EtcEntry *n = etc_tree_lookup (new_tree, p);
      gboolean changed = !etc_entry_equal (o, l);
      gboolean keeps_dir = is_dir (l) && !is_dir (n) && g_hash_table_contains (changed_below, p);
      if (blocked != NULL && !path_is_within (p, blocked))
        blocked = NULL;
      if (!changed && (!keeps_dir || blocked != NULL))
        continue;

      EtcMergeItem *item = g_new0 (EtcMergeItem, 1);
      item->path = g_strdup (p);
      item->change = !changed ? 0 : o == NULL ? 'A' : l == NULL ? 'D' : 'M';
      if (blocked != NULL)
        item->decision = ETC_DROP;
      else if (etc_entry_equal (l, n))
        item->decision = ETC_TAKE_NEW;
      else if (is_dir (l) && is_dir (n))
        {
          /* Only the directory's own metadata is at stake here; what is
           * below it is decided entry by entry. */
          item->decision = dir_meta_equal (l, o) ? ETC_TAKE_NEW : ETC_CARRY;
          if (item->decision == ETC_CARRY && !dir_meta_equal (n, o) && !dir_meta_equal (n, l))
            {
              item->conflict = TRUE;
              item->why = "directory mode, owner or xattrs changed locally and by the new image";
            }
        }
      else
        {
          item->decision = ETC_CARRY;
          if (!changed || !etc_entry_equal (n, o))
            {
              item->conflict = TRUE;
              item->new_beside = n != NULL;
              item->why = conflict_reason (o, l, n);
            }
        }
      if (item->decision == ETC_CARRY && !is_dir (l))
        blocked = item->path;
      if (item->change != 0)
        plan->n_changes++;
      if (item->conflict)
        plan->n_conflicts++;
      g_ptr_array_add (plan->items, item);
      g_hash_table_insert (plan->by_path, item->path, item);
    }
  return plan;
}

/* ---- applying ---- */

typedef struct
{
  int running_dfd;
  int new_dfd;
  int scratch_dfd;
  const EtcTree *running;
  gboolean privileged;
} Apply;

/* The parent directory of @path in the new /etc, and the last component.
 * With @optional, a parent that is gone (removed with its directory, or no
 * longer a directory) is *ret_fd = -1, not an error: nothing there to
 * remove or look at. */
static gboolean
open_parent_full (Apply *a, const char *path, gboolean optional, int *ret_fd, const char **ret_name,
                  GError **error)
{
  const char *slash = strrchr (path, '/');
  int fd;
  if (slash == NULL)
    fd = fcntl (a->new_dfd, F_DUPFD_CLOEXEC, 3);
  else
    {
      g_autofree char *dir = g_strndup (path, slash - path);
      fd = fs_open_beneath (a->new_dfd, dir, O_RDONLY | O_DIRECTORY);
    }
  *ret_name = slash ? slash + 1 : path;
  if (fd < 0 && optional && (errno == ENOENT || errno == ENOTDIR))
    {
      *ret_fd = -1;
      return TRUE;
    }
  if (fd < 0)
    {
      g_autofree char *shown = etc_merge_display_path (path);
      return throw_errno (error, "opening the directory of %s in the new /etc", shown);
    }
  *ret_fd = fd;
  return TRUE;
}

static gboolean
open_parent (Apply *a, const char *path, int *ret_fd, const char **ret_name, GError **error)
{
  return open_parent_full (a, path, FALSE, ret_fd, ret_name, error);
}

/* Gives @fd (or the symlink @name below @dfd) exactly the extended
 * attributes of @want. */
static gboolean
sync_xattrs (int fd, int dfd, const char *name, GArray *want, const char *what, GError **error)
{
  g_autoptr (GArray) have = NULL;
  if (!etc_read_xattrs (fd, dfd, name, what, &have, error))
    return FALSE;
  for (guint i = 0; i < have->len; i++)
    {
      const EtcXattr *h = &g_array_index (have, EtcXattr, i);
      gboolean wanted = FALSE;
      for (guint j = 0; j < want->len && !wanted; j++)
        wanted = strcmp (g_array_index (want, EtcXattr, j).name, h->name) == 0;
      if (!wanted && fd >= 0 && fremovexattr (fd, h->name) < 0 && errno != ENODATA)
        return throw_errno (error, "removing the extended attribute %s of %s", h->name, what);
    }
  for (guint i = 0; i < want->len; i++)
    {
      const EtcXattr *x = &g_array_index (want, EtcXattr, i);
      int r = fd >= 0 ? fsetxattr (fd, x->name, x->value, x->len, 0)
                      : import_symlink_setxattr_at (dfd, name, x->name, x->value, x->len);
      if (r < 0)
        return throw_errno (error, "setting the extended attribute %s of %s", x->name, what);
    }
  return TRUE;
}

static gboolean
copy_bytes (int from, int to, const char *what, GError **error)
{
  for (;;)
    {
      ssize_t n = copy_file_range (from, NULL, to, NULL, 1 << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
        break;
      if (n < 0)
        return throw_errno (error, "copying %s", what);
      if (n == 0)
        return TRUE;
    }
  char buf[65536];
  for (;;)
    {
      ssize_t n = read (from, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "reading %s", what);
      if (n == 0)
        return TRUE;
      for (ssize_t off = 0; off < n;)
        {
          ssize_t w = write (to, buf + off, n - off);
          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            return throw_errno (error, "writing %s", what);
          off += w;
        }
    }
}

/* A new inode named @tmp below @parent, filled from the running entry. */
static gboolean
create_copy (Apply *a, const char *path, const EtcEntry *l, int parent, const char *tmp,
             const char *what, GError **error)
{
  if (l->type == MANIFEST_TYPE_SYMLINK)
    {
      if (symlinkat (l->target, parent, tmp) < 0)
        return throw_errno (error, "creating %s", what);
      if (a->privileged && fchownat (parent, tmp, l->uid, l->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return throw_errno (error, "setting the owner of %s", what);
      g_autofree char *dir = g_path_get_dirname (path);
      const char *slash = strrchr (path, '/');
      autofd src_dir = slash ? fs_open_beneath (a->running_dfd, dir, O_RDONLY | O_DIRECTORY)
                             : fcntl (a->running_dfd, F_DUPFD_CLOEXEC, 3);
      if (src_dir < 0)
        return throw_errno (error, "opening the directory of %s in the running /etc", what);
      g_autoptr (GArray) xattrs = NULL;
      return etc_read_xattrs (-1, src_dir, slash ? slash + 1 : path, what, &xattrs, error)
             && sync_xattrs (-1, parent, tmp, xattrs, what, error);
    }

  autofd src = fs_open_beneath (a->running_dfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (src < 0)
    return throw_errno (error, "opening %s in the running /etc", what);
  if (fstat (src, &st) < 0)
    return throw_errno (error, "reading %s in the running /etc", what);
  if (!S_ISREG (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_FAILED,
                        "%s in the running /etc changed while it was merged", what);
  autofd fd = openat (parent, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return throw_errno (error, "creating %s", what);
  g_autoptr (GArray) xattrs = NULL;
  struct timespec times[2] = { st.st_atim, st.st_mtim };
  if (!copy_bytes (src, fd, what, error))
    return FALSE;
  if (a->privileged && fchown (fd, st.st_uid, st.st_gid) < 0)
    return throw_errno (error, "setting the owner of %s", what);
  if (fchmod (fd, st.st_mode & 07777) < 0)
    return throw_errno (error, "setting the mode of %s", what);
  if (!etc_read_xattrs (src, -1, NULL, what, &xattrs, error)
      || !sync_xattrs (fd, -1, NULL, xattrs, what, error))
    return FALSE;
  if (futimens (fd, times) < 0)
    return throw_errno (error, "setting the times of %s", what);
  return TRUE;
}

/* A directory carried: created if the new /etc has none there, then given
 * the running one's mode, owner and xattrs (directories are never shared
 * between deployments, so changing one in place is safe). */
static gboolean
carry_dir (Apply *a, const char *path, int parent, const char *name, const char *what,
           GError **error)
{
  struct stat st;
  gboolean exists;
  if (!fs_stat_optional (parent, name, &st, &exists, error))
    return FALSE;
  if (exists && !S_ISDIR (st.st_mode) && !fs_rm_rf_at (parent, name, error))
    return FALSE;
  if ((!exists || !S_ISDIR (st.st_mode)) && mkdirat (parent, name, 0700) < 0)
    return throw_errno (error, "creating %s", what);
  autofd src = fs_open_beneath (a->running_dfd, path, O_RDONLY | O_DIRECTORY);
  autofd dest = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat src_st;
  if (src < 0 || fstat (src, &src_st) < 0)
    return throw_errno (error, "opening %s in the running /etc", what);
  if (dest < 0)
    return throw_errno (error, "opening %s", what);
  g_autoptr (GArray) xattrs = NULL;
  if (a->privileged && fchown (dest, src_st.st_uid, src_st.st_gid) < 0)
    return throw_errno (error, "setting the owner of %s", what);
  if (fchmod (dest, src_st.st_mode & 07777) < 0)
    return throw_errno (error, "setting the mode of %s", what);
  return etc_read_xattrs (src, -1, NULL, what, &xattrs, error)
         && sync_xattrs (dest, -1, NULL, xattrs, what, error);
}

/* Makes @path in the new /etc the running version (or absent). */
static gboolean
carry (Apply *a, const char *path, GError **error)
{
  const EtcEntry *l = etc_tree_lookup (a->running, path);
  g_autofree char *what = etc_merge_display_path (path);
  autofd parent = -1;
  const char *name;
  if (!open_parent_full (a, path, l == NULL, &parent, &name, error))
    return FALSE;
  if (l == NULL)
    return parent < 0 || fs_rm_rf_at (parent, name, error);
  if (l->type == MANIFEST_TYPE_DIR)
    return carry_dir (a, path, parent, name, what, error);

  /* Written in the scratch directory, where cleanup removes what a crash
   * leaves, and only then renamed into the new /etc. */
  g_autofree char *tmp = fs_temp_name ("etc");
  if (!create_copy (a, path, l, a->scratch_dfd, tmp, what, error))
    {
      (void)fs_unlink_at_optional (a->scratch_dfd, tmp, 0, NULL); /* the error says what failed */
      return FALSE;
    }
  struct stat st;
  gboolean exists;
  if (!fs_stat_optional (parent, name, &st, &exists, error)
      || (exists && S_ISDIR (st.st_mode) && !fs_rm_rf_at (parent, name, error)))
    {
      (void)fs_unlink_at_optional (a->scratch_dfd, tmp, 0, NULL);
      return FALSE;
    }
  if (renameat (a->scratch_dfd, tmp, parent, name) < 0)
    {
      int errsv = errno;
      (void)fs_unlink_at_optional (a->scratch_dfd, tmp, 0, NULL);
      return throw_errno_value (error, errsv, "moving %s into place", what);
    }
  return TRUE;
}

/* The new image's version of @path moves to <path>.stagehand-new (or
 * back). Idempotent, so that a finalize killed half-way and run again
 * never loses it: <path>.stagehand-new only ever holds the new image's
 * version, so when it is already there (forth) or no longer there (back),
 * the move happened. */
static gboolean
move_beside (Apply *a, const char *path, gboolean back, GError **error)
{
  autofd parent = -1;
  const char *name;
  if (!open_parent (a, path, &parent, &name, error))
    return FALSE;
  g_autofree char *beside = g_strconcat (name, ETC_MERGE_NEW_SUFFIX, NULL);
  struct stat st;
  gboolean beside_exists;
  if (!fs_stat_optional (parent, beside, &st, &beside_exists, error))
    return FALSE;
  if (beside_exists != back)
    return TRUE;
  if (back && !fs_rm_rf_at (parent, name, error))
    return FALSE;
  const char *from = back ? beside : name, *to = back ? name : beside;
  if (renameat (parent, from, parent, to) < 0 && errno != ENOENT)
    {
      g_autofree char *what = etc_merge_display_path (path);
      return throw_errno (error, "keeping the new image's %s as %s", what, to);
    }
  return TRUE;
}

static EtcDecision
decision_of (const EtcMergePlan *plan, const char *path, gboolean *ret_beside)
{
  const EtcMergeItem *item = plan ? g_hash_table_lookup (plan->by_path, path) : NULL;
  *ret_beside = item != NULL && item->new_beside;
  return item != NULL ? item->decision : ETC_TAKE_NEW;
}

/* The finalize: what stage applied for @previous is in the new /etc; make
 * @path what @plan says, touching it only if its running version or its
 * decision changed since. */
static gboolean
apply_change (Apply *a, const char *path, const EtcMergePlan *plan, const EtcTree *new_tree,
              const EtcMergePlan *previous, const EtcTree *previous_running, GError **error)
{
  gboolean b1, b2;
  EtcDecision d1 = decision_of (previous, path, &b1);
  EtcDecision d2 = decision_of (plan, path, &b2);
  const EtcEntry *l = etc_tree_lookup (a->running, path);
  gboolean touched = !etc_entry_equal (etc_tree_lookup (previous_running, path), l);
  const EtcEntry *n = etc_tree_lookup (new_tree, path);

  if (d2 == ETC_CARRY)
    {
      if (d1 == ETC_CARRY && !touched && b1 == b2)
        return TRUE;
      if (b2 && !b1 && !move_beside (a, path, FALSE, error))
        return FALSE;
      return carry (a, path, error);
    }
  if (d2 != ETC_TAKE_NEW || d1 == ETC_TAKE_NEW)
    return TRUE;
  /* The new image's version again: it is beside, or it is what runs. */
  if (d1 == ETC_CARRY && b1)
    return move_beside (a, path, TRUE, error);
  if (d1 == ETC_DROP)
    {
      autofd parent = -1;
      const char *name;
      struct stat st;
      gboolean exists;
      if (!open_parent_full (a, path, TRUE, &parent, &name, error))
        return FALSE;
      if (parent < 0)
        return TRUE; /* its directory is not there: carried away with it */
      if (!fs_stat_optional (parent, name, &st, &exists, error))
        return FALSE;
      if (exists || n == NULL)
        return TRUE;
    }
  if (n == NULL || etc_entry_equal (l, n))
    return carry (a, path, error);
  g_autofree char *what = etc_merge_display_path (path);
  log_event (LOG_WARNING, NULL,
             "/etc merge: the new image's %s is no longer at hand; keeping the running version",
             what);
  return carry (a, path, error);
}

gboolean
etc_merge_apply (int running_etc_dfd, int new_etc_dfd, int scratch_dfd, const EtcMergePlan *plan,
                 const EtcTree *running, const EtcTree *new_tree, const EtcMergePlan *previous,
                 const EtcTree *previous_running, GError **error)
{
  Apply a = { .running_dfd = running_etc_dfd,
              .new_dfd = new_etc_dfd,
              .scratch_dfd = scratch_dfd,
              .running = running,
              .privileged = geteuid () == 0 };
  if (previous == NULL)
    {
      for (guint i = 0; i < plan->items->len; i++)
        {
          const EtcMergeItem *item = plan->items->pdata[i];
          if (item->decision != ETC_CARRY)
            continue;
          if ((item->new_beside && !move_beside (&a, item->path, FALSE, error))
              || !carry (&a, item->path, error))
            return FALSE;
        }
      return TRUE;
    }

  /* Every path either plan decides, plus every path that changed since. */
  g_autoptr (GHashTable) set = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < plan->items->len; i++)
    g_hash_table_add (set, ((EtcMergeItem *)plan->items->pdata[i])->path);
  for (guint i = 0; i < previous->items->len; i++)
    g_hash_table_add (set, ((EtcMergeItem *)previous->items->pdata[i])->path);
  g_autoptr (GPtrArray) paths = sorted_keys (set);
  for (guint i = 0; i < paths->len; i++)
    if (!apply_change (&a, paths->pdata[i], plan, new_tree, previous, previous_running, error))
      return FALSE;
  return TRUE;
}

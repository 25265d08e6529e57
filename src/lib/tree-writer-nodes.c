/* What the tree writer has written, and the directories it holds open on
 * the way to the current entry.
 *
 * The table of written entries is a tree of names: each node has its
 * parent and its own name, and the table is keyed by (parent, name). A
 * path of depth d costs its d names once. It used to be keyed by the full
 * path, with each directory's full path stored again in its DirRecord: a
 * 30 KB tar whose one file was 10,000 directories deep made 10,000 parent
 * directories, each with two copies of its path, and took 232 MB and 6 s
 * (issue 14, item 5). Now memory and time grow with the image, not with
 * the square of its depth.
 *
 * The stack holds one level per directory from the root down to the last
 * entry's parent, each with an O_PATH fd, but only the deepest
 * MAX_OPEN_DIRS fds stay open: a hostile archive with thousands of nested
 * components must not exhaust the fd table. Going back up, a closed level
 * is re-opened as ".." of the level below it (one openat per level, not a
 * walk down from the root); going down into a closed level, by name with
 * O_NOFOLLOW.
 */
#include "config.h"

#include "import-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPEN_DIRS 64

typedef struct
{
  TreeNode *node;
  int fd; /* O_PATH directory fd, or -1 when closed to stay under MAX_OPEN_DIRS */
} StackLevel;

static void
stack_level_clear (gpointer p)
{
  StackLevel *l = p;
  if (l->fd >= 0)
    (void)close (l->fd); /* read-only O_PATH fd: nothing to report */
}

static guint
node_hash (gconstpointer p)
{
  const TreeNode *n = p;
  return g_str_hash (n->name) ^ g_direct_hash (n->parent);
}

static gboolean
node_equal (gconstpointer a, gconstpointer b)
{
  const TreeNode *x = a, *y = b;
  return x->parent == y->parent && strcmp (x->name, y->name) == 0;
}

static void
node_free (gpointer p)
{
  TreeNode *n = p;
  g_free (n->name);
  g_free (n);
}

void
tree_nodes_init (TreeWriter *w)
{
  w->nodes = g_hash_table_new_full (node_hash, node_equal, node_free, NULL);
  w->root_node = g_new0 (TreeNode, 1);
  w->root_node->name = g_strdup ("");
  w->root_node->type = NODE_DIR;
  w->stack = g_array_new (FALSE, TRUE, sizeof (StackLevel));
  g_array_set_clear_func (w->stack, stack_level_clear);
  StackLevel root = { .node = w->root_node, .fd = -1 };
  g_array_append_val (w->stack, root);
}

void
tree_nodes_clear (TreeWriter *w)
{
  g_clear_pointer (&w->stack, g_array_unref);
  g_clear_pointer (&w->nodes, g_hash_table_unref);
  g_clear_pointer (&w->root_node, node_free);
}

TreeNode *
tree_node_child (TreeWriter *w, TreeNode *parent, const char *name)
{
  TreeNode probe = { .parent = parent, .name = (char *)name };
  return g_hash_table_lookup (w->nodes, &probe);
}

TreeNode *
tree_node_lookup (TreeWriter *w, char **comps, guint n)
{
  TreeNode *node = w->root_node;
  for (guint i = 0; i < n && node != NULL; i++)
    node = tree_node_child (w, node, comps[i]);
  return node;
}

TreeNode *
tree_node_add (TreeWriter *w, TreeNode *parent, const char *name, NodeType type)
{
  TreeNode *node = g_new0 (TreeNode, 1);
  node->parent = parent;
  node->name = g_strdup (name);
  node->depth = parent->depth + 1;
  node->type = type;
  g_hash_table_add (w->nodes, node);
  return node;
}

char *
tree_node_path (const TreeNode *node)
{
  if (node->parent == NULL)
    return g_strdup ("");
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  for (const TreeNode *n = node; n->parent != NULL; n = n->parent)
    g_ptr_array_add (names, n->name);
  GString *s = g_string_new (NULL);
  for (guint i = names->len; i-- > 0;)
    {
      g_string_append (s, names->pdata[i]);
      if (i > 0)
        g_string_append_c (s, '/');
    }
  return g_string_free (s, FALSE);
}

/* An error while entering @node on the way to @entry_path (NULL: @node is
 * what is being entered for its own sake, as in tree_writer_finish()). */
static gboolean
throw_enter (GError **error, const char *entry_path, const TreeNode *node, const char *what)
{
  int errsv = errno;
  g_autofree char *path = entry_path == NULL ? tree_node_path (node) : NULL;
  errno = errsv;
  return import_throw_entry_errno (error, entry_path != NULL ? entry_path : path, what);
}

static StackLevel *
stack_level (TreeWriter *w, guint i)
{
  return &g_array_index (w->stack, StackLevel, i);
}

/* Drops the levels from @len on. The new deepest level gets an fd if it
 * had none, as ".." of the level below it: going back up a deep path
 * re-opens one level per step instead of walking down from the root. */
static void
stack_truncate (TreeWriter *w, guint len)
{
  for (guint i = w->stack->len; i-- > len;)
    {
      StackLevel *l = stack_level (w, i);
      StackLevel *up = stack_level (w, i - 1);
      if (i - 1 > 0 && up->fd < 0 && l->fd >= 0)
        {
          up->fd = openat (l->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
          if (up->fd >= 0)
            w->n_open++;
        }
      if (l->fd >= 0)
        w->n_open--;
      g_array_set_size (w->stack, i);
    }
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

/* The fd of level @i, re-opening it by name (O_NOFOLLOW) from the deepest
 * open level above it when it was closed. */
static gboolean
stack_level_fd (TreeWriter *w, const char *entry_path, guint i, int *ret_fd, GError **error)
{
  guint open = i;
  while (open > 0 && stack_level (w, open)->fd < 0)
    open--;
  for (guint j = open + 1; j <= i; j++)
    {
      int parent_fd = j - 1 == 0 ? w->root_fd : stack_level (w, j - 1)->fd;
      StackLevel *l = stack_level (w, j);
      l->fd = openat (parent_fd, l->node->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (l->fd < 0)
        return throw_enter (error, entry_path, l->node, "re-opening a parent directory");
      w->n_open++;
      stack_limit_open (w, j);
    }
  *ret_fd = i == 0 ? w->root_fd : stack_level (w, i)->fd;
  return TRUE;
}

gboolean
tree_writer_push_dir (TreeWriter *w, const char *entry_path, TreeNode *dir, int *ret_fd,
                      GError **error)
{
  g_assert (dir->parent == stack_level (w, w->stack->len - 1)->node);
  int parent_fd;
  if (!stack_level_fd (w, entry_path, w->stack->len - 1, &parent_fd, error))
    return FALSE;
  int fd = openat (parent_fd, dir->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return throw_enter (error, entry_path, dir, "opening a parent directory");
  StackLevel l = { .node = dir, .fd = fd };
  g_array_append_val (w->stack, l);
  w->n_open++;
  stack_limit_open (w, w->stack->len - 1);
  *ret_fd = fd;
  return TRUE;
}

gboolean
tree_writer_enter_node (TreeWriter *w, const char *entry_path, TreeNode *dir, int *ret_fd,
                        GError **error)
{
  /* The deepest ancestor of @dir (or @dir itself) already on the stack;
   * the root always is. */
  TreeNode *common = dir;
  while (!(common->depth < w->stack->len && stack_level (w, common->depth)->node == common))
    common = common->parent;
  stack_truncate (w, common->depth + 1);

  guint n = dir->depth - common->depth;
  g_autofree TreeNode **down = g_new (TreeNode *, n + 1);
  TreeNode *node = dir;
  for (guint i = n; i > 0; i--, node = node->parent)
    down[i - 1] = node;
  for (guint i = 0; i < n; i++)
    {
      int fd;
      if (!tree_writer_push_dir (w, entry_path, down[i], &fd, error))
        return FALSE;
    }
  return stack_level_fd (w, entry_path, dir->depth, ret_fd, error);
}

void
tree_writer_leave (TreeWriter *w)
{
  stack_truncate (w, 1);
}

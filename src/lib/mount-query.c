/* What is mounted at a path, from mountinfo alone.
 *
 * The path itself is never stat()ed or opened: doing so on an autofs mount
 * point triggers the automount, which is exactly what a caller asking "is
 * this an automount, and is it mounted yet?" does not want (systemd#22528,
 * ostree#2543). Only the parent directory is resolved.
 */
#include "config.h"

#include "mount-query.h"

#include "errors.h"

#include <errno.h>
#include <libmount.h>
#include <stdlib.h>
#include <string.h>

/* libmount declares only struct tags; g_autoptr() needs type names. */
typedef struct libmnt_table libmnt_table;
typedef struct libmnt_iter libmnt_iter;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (libmnt_table, mnt_unref_table)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (libmnt_iter, mnt_free_iter)

void
mount_state_free (MountState *state)
{
  if (state == NULL)
    return;
  g_free (state->target);
  g_free (state->fstype);
  g_free (state->source);
  g_free (state);
}

/* Makes @path absolute and canonical without resolving its last component:
 * realpath() of the parent directory plus the last name as given. A trailing
 * "/" or "/." names the same directory, so it is dropped lexically rather
 * than resolved. */
static gboolean
canonicalize_mount_path (const char *path, char **ret_canonical, GError **error)
{
  if (*path == '\0')
    return throw_error (error, STAGEHAND_ERROR_INVALID, "Empty mount point path");

  g_autofree char *absolute = NULL;
  if (g_path_is_absolute (path))
    absolute = g_strdup (path);
  else
    {
      g_autofree char *cwd = g_get_current_dir ();
      absolute = g_build_filename (cwd, path, NULL);
    }

  gsize len = strlen (absolute);
  for (;;)
    {
      if (len > 1 && absolute[len - 1] == '/')
        len--;
      else if (len >= 2 && absolute[len - 1] == '.' && absolute[len - 2] == '/')
        len = len == 2 ? 1 : len - 2;
      else
        break;
    }
  absolute[len] = '\0';

  if (g_str_equal (absolute, "/"))
    {
      *ret_canonical = g_strdup ("/");
      return TRUE;
    }

  g_autofree char *name = g_path_get_basename (absolute);

  /* "x/.." walks through x whatever we do, so there is nothing to protect:
   * resolve the whole path. */
  if (g_str_equal (name, ".."))
    {
      g_autofree char *real = realpath (absolute, NULL);
      if (real == NULL)
        return throw_errno (error, "Resolving %s", absolute);
      *ret_canonical = g_steal_pointer (&real);
      return TRUE;
    }

  g_autofree char *dir = g_path_get_dirname (absolute);
  g_autofree char *real_dir = realpath (dir, NULL);
  if (real_dir == NULL)
    return throw_errno (error, "Resolving %s", dir);

  *ret_canonical = g_build_filename (real_dir, name, NULL);
  return TRUE;
}

static struct libmnt_fs *
find_by_id (GPtrArray *entries, int id)
{
  for (guint i = 0; i < entries->len; i++)
    {
      struct libmnt_fs *fs = entries->pdata[i];
      if (mnt_fs_get_id (fs) == id)
        return fs;
    }
  return NULL;
}

static gboolean
fs_is_autofs (struct libmnt_fs *fs)
{
  return g_strcmp0 (mnt_fs_get_fstype (fs), "autofs") == 0;
}

gboolean
mount_query (const char *mountinfo_path, const char *path, MountState **ret_state, GError **error)
{
  if (mountinfo_path == NULL)
    mountinfo_path = "/proc/self/mountinfo";

  g_autofree char *target = NULL;
  if (!canonicalize_mount_path (path, &target, error))
    return FALSE;

  g_autoptr (libmnt_table) table = mnt_new_table ();
  if (table == NULL)
    return throw_errno_value (error, ENOMEM, "Reading %s", mountinfo_path);
  /* Lines that do not parse are skipped (libmount's default). */
  int r = mnt_table_parse_file (table, mountinfo_path);
  if (r < 0)
    return throw_errno_value (error, r, "Reading %s", mountinfo_path);

  /* Entries whose mount point is exactly @target (libmount has already
   * unescaped "\040" and friends), in mountinfo order. */
  g_autoptr (GPtrArray) at_target = g_ptr_array_new ();
  g_autoptr (libmnt_iter) iter = mnt_new_iter (MNT_ITER_FORWARD);
  if (iter == NULL)
    return throw_errno_value (error, ENOMEM, "Reading %s", mountinfo_path);
  struct libmnt_fs *fs;
  while (mnt_table_next_fs (table, iter, &fs) == 0)
    {
      if (mnt_fs_streq_target (fs, target))
        g_ptr_array_add (at_target, fs);
    }

  g_autoptr (MountState) state = g_new0 (MountState, 1);
  state->target = g_steal_pointer (&target);

  if (at_target->len > 0)
    {
      /* The stack at one mount point is a chain: each mount on top has the
       * one below it as its parent. Walk it down from the newest entry rather
       * than trusting file order alone, so that a mount hidden under an
       * over-mounted parent directory (it still shows up with the same path,
       * but its parent is not in this stack) is not taken for the bottom. */
      struct libmnt_fs *cur = at_target->pdata[at_target->len - 1];
      struct libmnt_fs *real = NULL;
      for (guint steps = 0;; steps++)
        {
          if (real == NULL && !fs_is_autofs (cur))
            real = cur;
          struct libmnt_fs *below = find_by_id (at_target, mnt_fs_get_parent_id (cur));
          /* The bound guards against a malformed file with a parent loop. */
          if (below == NULL || below == cur || steps >= at_target->len)
            break;
          cur = below;
        }

      state->is_mountpoint = TRUE;
      state->is_autofs = fs_is_autofs (cur);
      if (real != NULL)
        {
          state->is_mounted = TRUE;
          state->fstype = g_strdup (mnt_fs_get_fstype (real));
          state->source = g_strdup (mnt_fs_get_source (real));
        }
    }

  *ret_state = g_steal_pointer (&state);
  return TRUE;
}

char *
mount_state_describe (const MountState *state)
{
  if (!state->is_mountpoint)
    return g_strdup ("not a mount point");

  g_autofree char *what = NULL;
  if (state->is_mounted)
    {
      const char *fstype = state->fstype != NULL ? state->fstype : "unknown";
      what = state->source != NULL ? g_strdup_printf ("%s %s", fstype, state->source)
                                   : g_strdup (fstype);
    }

  if (!state->is_autofs)
    return g_steal_pointer (&what);
  if (what == NULL)
    return g_strdup ("autofs, not mounted");
  return g_strdup_printf ("autofs, mounted (%s)", what);
}

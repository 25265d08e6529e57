/* Exchange mode's swap: loader/ is a real directory (vfat has no symlinks;
 * systemd-boot's loader/ exists already), and a complete new set in
 * loader/entries.new replaces loader/entries by one
 * renameat2(RENAME_EXCHANGE). Where the filesystem refuses the exchange, the
 * fallback moves the entries one at a time and undoes every move if one
 * fails, so a failed switch leaves the old configuration whole. */
#include "config.h"

#include "boot-config-private.h"
#include "boot-config.h"
#include "errors.h"
#include "fsutil.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#define DEBUG_NO_EXCHANGE "STAGEHAND_DEBUG_NO_EXCHANGE"

/* The filesystems known to support RENAME_EXCHANGE whatever the kernel
 * (ext4 since 3.15, xfs 4.0, btrfs 4.7, tmpfs 3.17, f2fs 4.0: every
 * kernel stagehand runs on); vfat is decided by the version. */
static const char *
exchange_capable_filesystem (long f_type)
{
  switch (f_type)
    {
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case TMPFS_MAGIC:
      return "tmpfs";
    case F2FS_SUPER_MAGIC:
      return "f2fs";
    default:
      return NULL;
    }
}

gboolean
boot_exchange_expect_atomic (long f_type, const char *kernel_release, gboolean forced_off,
                             char **ret_reason)
{
  if (forced_off)
    {
      *ret_reason = g_strdup (DEBUG_NO_EXCHANGE " is set: entries are moved one at a time");
      return FALSE;
    }
  if (f_type == MSDOS_SUPER_MAGIC)
    {
      guint major = 0;
      if (kernel_release != NULL && sscanf (kernel_release, "%u.", &major) == 1 && major >= 6)
        {
          *ret_reason = g_strdup ("vfat supports RENAME_EXCHANGE since Linux 6.0");
          return TRUE;
        }
      *ret_reason = g_strdup_printf ("vfat refuses RENAME_EXCHANGE before Linux 6.0 (this is %s): "
                                     "entries are moved one at a time",
                                     kernel_release ? kernel_release : "an unknown version");
      return FALSE;
    }
  const char *fs = exchange_capable_filesystem (f_type);
  if (fs != NULL)
    {
      *ret_reason = g_strdup_printf ("%s supports RENAME_EXCHANGE", fs);
      return TRUE;
    }
  *ret_reason = g_strdup_printf ("RENAME_EXCHANGE is tried at each swap; the boot filesystem "
                                 "(type 0x%lx) is not known to support it, and where it refuses, "
                                 "entries are moved one at a time",
                                 f_type);
  return FALSE;
}

gboolean
boot_exchange_expect_atomic_at (int boot_dfd, char **ret_reason)
{
  struct statfs sfs;
  struct utsname u;
  gboolean forced_off = g_getenv (DEBUG_NO_EXCHANGE) != NULL;
  if (fstatfs (boot_dfd, &sfs) < 0)
    {
      *ret_reason
          = g_strdup_printf ("the boot filesystem cannot be checked: %s", g_strerror (errno));
      return FALSE;
    }
  return boot_exchange_expect_atomic (sfs.f_type, uname (&u) == 0 ? u.release : NULL, forced_off,
                                      ret_reason);
}

/* ------------------------------------------------------------ the fallback */

typedef enum
{
  MOVE_IN,      /* entries.new/NAME -> entries/NAME, a new name */
  MOVE_REPLACE, /* entries.new/NAME over entries/NAME, a copy of which is in entries.old */
  MOVE_OUT,     /* entries/NAME -> entries.old/NAME */
} MoveKind;

typedef struct
{
  MoveKind kind;
  const char *name;
} Move;

typedef struct
{
  int new_dfd, live_dfd, old_dfd;
} MergeDirs;

/* One move, or (@undo) what puts it back: IN goes back to entries.new,
 * REPLACE is replaced in turn by the old entry's copy, OUT comes back. */
static gboolean
merge_move (const MergeDirs *d, const Move *m, gboolean undo, GError **error)
{
  int from, to;
  switch (m->kind)
    {
    case MOVE_IN:
      from = undo ? d->live_dfd : d->new_dfd;
      to = undo ? d->new_dfd : d->live_dfd;
      break;
    case MOVE_REPLACE:
      from = undo ? d->old_dfd : d->new_dfd;
      to = d->live_dfd;
      break;
    case MOVE_OUT:
    default:
      from = undo ? d->old_dfd : d->live_dfd;
      to = undo ? d->live_dfd : d->old_dfd;
      break;
    }
  if (renameat (from, m->name, to, m->name) == 0)
    return TRUE;
  if (undo)
    return throw_errno (error, "putting entry %s back", m->name);
  return throw_errno (error, "moving entry %s %s " LOADER "/" ENTRIES, m->name,
                      m->kind == MOVE_OUT ? "out of" : "into");
}

/* The moves, in order: first the names only the new set has (the new
 * default is one of them: its name carries a new priority or a new id),
 * then each name both sets have (the new file renamed over the old one, so
 * the name is never missing: a crash must not drop a deployment from the
 * menu), then the old set's names the new one drops. Only stagehand's entries move:
 * another tool's entries and files stay in loader/entries as they are (the
 * new set's copies of them go with loader/entries.new), so one written
 * there during the switch is kept. */
static GArray *
plan_moves (GPtrArray *new_names, GPtrArray *live_names)
{
  g_autoptr (GHashTable) live = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) wanted = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < live_names->len; i++)
    if (g_str_has_prefix (live_names->pdata[i], BOOT_ENTRY_PREFIX))
      g_hash_table_add (live, live_names->pdata[i]);
  for (guint i = 0; i < new_names->len; i++)
    if (g_str_has_prefix (new_names->pdata[i], BOOT_ENTRY_PREFIX))
      g_hash_table_add (wanted, new_names->pdata[i]);

  GArray *moves = g_array_new (FALSE, FALSE, sizeof (Move));
  for (guint i = 0; i < new_names->len; i++)
    {
      const char *n = new_names->pdata[i];
      if (g_hash_table_contains (wanted, n) && !g_hash_table_contains (live, n))
        g_array_append_val (moves, ((Move){ MOVE_IN, n }));
    }
  for (guint i = 0; i < new_names->len; i++)
    {
      const char *n = new_names->pdata[i];
      if (g_hash_table_contains (wanted, n) && g_hash_table_contains (live, n))
        g_array_append_val (moves, ((Move){ MOVE_REPLACE, n }));
    }
  for (guint i = 0; i < live_names->len; i++)
    {
      const char *n = live_names->pdata[i];
      if (g_hash_table_contains (live, n) && !g_hash_table_contains (wanted, n))
        g_array_append_val (moves, ((Move){ MOVE_OUT, n }));
    }
  return moves;
}

/* The fallback where RENAME_EXCHANGE is refused: the switch is a series of
 * renames (plan_moves()), each of which leaves a complete entry in place
 * (an old one keeps its name until it moves out or is replaced whole, a
 * new one arrives whole). The old entries go to loader/entries.old rather
 * than away (a copy of each one that is replaced, made first), so a failed
 * rename is undone by renaming back every move made so far, in reverse:
 * after a failure loader/entries is the old set again, byte for byte, and
 * the swap fails before its commit point, which here is the last move. Only when undoing fails too
 * (the filesystem refuses renames it just made: an I/O error, a read-only remount) does the error
 * say the directory holds entries of both sets. A crash part-way leaves
 * both sets side by side, each entry complete; the next swap writes the
 * whole new set again. */
static gboolean
swap_merge (int loader_dfd, GError **error)
{
  autofd new_dfd = -1, live_dfd = -1, old_dfd = -1;
  if (!fs_opendir_at (loader_dfd, EXCHANGE_NEW_NAME, &new_dfd, error)
      || !fs_opendir_at (loader_dfd, ENTRIES, &live_dfd, error))
    return FALSE;
  g_autoptr (GPtrArray) new_names = NULL, live_names = NULL;
  if (!boot_list_entry_names (new_dfd, EXCHANGE_NEW, &new_names, error)
      || !boot_list_entry_names (live_dfd, LOADER "/" ENTRIES, &live_names, error))
    return FALSE;
  g_autoptr (GArray) moves = plan_moves (new_names, live_names);

  /* A leftover of an interrupted fallback is not live: start over. It
   * exists durably before anything moves into it. */
  if (!fs_rm_rf_at (loader_dfd, EXCHANGE_OLD_NAME, error))
    return FALSE;
  if (mkdirat (loader_dfd, EXCHANGE_OLD_NAME, 0755) < 0)
    return throw_errno (error, "creating " EXCHANGE_OLD);
  gboolean ready = fs_opendir_at (loader_dfd, EXCHANGE_OLD_NAME, &old_dfd, error)
                   && fs_fsync_fd (loader_dfd, LOADER, error);
  for (guint i = 0; ready && i < moves->len; i++)
    {
      const Move *m = &g_array_index (moves, Move, i);
      struct stat st;
      if (m->kind != MOVE_REPLACE)
        continue;
      if (fstatat (live_dfd, m->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        ready = throw_errno (error, "copying entry %s aside", m->name);
      else if (!fs_copy_file_atomic_at (live_dfd, m->name, old_dfd, m->name, st.st_mode & 07777,
                                        error))
        ready = prefix_error (error, "copying entry %s aside: ", m->name);
    }
  if (!ready)
    {
      (void)fs_rm_rf_at (loader_dfd, EXCHANGE_OLD_NAME, NULL); /* best effort: ours, not live */
      return FALSE;
    }

  MergeDirs dirs = { new_dfd, live_dfd, old_dfd };
  for (guint i = 0; i < moves->len; i++)
    {
      g_autoptr (GError) move_error = NULL;
      if (merge_move (&dirs, &g_array_index (moves, Move, i), FALSE, &move_error))
        continue;
      g_autoptr (GError) undo_error = NULL;
      gboolean undone = TRUE;
      for (guint j = i; undone && j-- > 0;)
        undone = merge_move (&dirs, &g_array_index (moves, Move, j), TRUE, &undo_error);
      if (undone)
        {
          /* The old set is back (in the page cache at least): a failed
           * fsync here is a warning, like one after a commit. */
          boot_fsync_after_commit (live_dfd, LOADER "/" ENTRIES);
          /* Holds copies of live entries at most now; best effort: tidy
           * removes it otherwise. */
          (void)fs_rm_rf_at (loader_dfd, EXCHANGE_OLD_NAME, NULL);
          return throw_error (error, STAGEHAND_ERROR_FAILED,
                              "%s; the previous entries were put back", move_error->message);
        }
      return throw_error (error, STAGEHAND_ERROR_FAILED,
                          "%s; putting the previous entries back failed too (%s): " LOADER
                          "/" ENTRIES " holds entries of both the old and the new set",
                          move_error->message, undo_error->message);
    }
  /* Past the last move: the new set is live. */
  boot_fsync_after_commit (live_dfd, LOADER "/" ENTRIES);
  boot_fsync_after_commit (old_dfd, EXCHANGE_OLD);
  return TRUE;
}

/* ------------------------------------------------------------ the swap */

static char *
describe_filesystem (int dfd)
{
  struct statfs sfs;
  if (fstatfs (dfd, &sfs) < 0)
    return g_strdup ("of an unknown type");
  if (sfs.f_type == MSDOS_SUPER_MAGIC)
    return g_strdup ("vfat");
  const char *fs = exchange_capable_filesystem (sfs.f_type);
  return fs ? g_strdup (fs) : g_strdup_printf ("type 0x%lx", (long)sfs.f_type);
}

/* renameat2(RENAME_EXCHANGE) of loader/entries with loader/entries.new. We
 * exchange entries/ rather than loader/ itself because loader/ also holds
 * files that are not ours (systemd-boot's loader.conf, random-seed) which
 * must stay where they are. The exchange is always tried: whether the
 * filesystem supports it is its answer, not the kernel version's (ext4,
 * xfs and btrfs have for years; vfat since Linux 6.0). */
gboolean
boot_swap_exchange (int boot_dfd, char **ret_how, GError **error)
{
  autofd loader_dfd = -1;
  if (!fs_opendir_at (boot_dfd, LOADER, &loader_dfd, error))
    return FALSE;
  struct stat st;
  gboolean has_live;
  if (!fs_stat_optional (loader_dfd, ENTRIES, &st, &has_live, error))
    return FALSE;
  g_autofree char *how = NULL;
  if (!has_live)
    {
      /* First entry set: a plain rename is just as atomic. */
      if (renameat (loader_dfd, EXCHANGE_NEW_NAME, loader_dfd, ENTRIES) < 0)
        return throw_errno (error, "renaming the new entry set into place");
      how = g_strdup ("atomic: the first entry set renamed into place");
    }
  else
    {
      g_autofree char *refusal = NULL;
      /* The debug switch stands for a filesystem that refuses, so tests
       * run the fallback on any filesystem. */
      if (g_getenv (DEBUG_NO_EXCHANGE) != NULL)
        refusal = g_strdup (DEBUG_NO_EXCHANGE " is set");
      /* The commit point. */
      else if (renameat2 (loader_dfd, EXCHANGE_NEW_NAME, loader_dfd, ENTRIES, RENAME_EXCHANGE) == 0)
        how = g_strdup ("atomic: renameat2(RENAME_EXCHANGE) of " LOADER "/" ENTRIES);
      /* EINVAL: the filesystem has no exchange (vfat before 6.0); ENOSYS:
       * no renameat2 at all; EOPNOTSUPP: a filesystem that says so. */
      else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
        {
          int refused = errno;
          g_autofree char *fs = describe_filesystem (loader_dfd);
          refusal = g_strdup_printf ("the boot filesystem (%s) refused "
                                     "renameat2(RENAME_EXCHANGE): %s",
                                     fs, g_strerror (refused));
        }
      else
        return throw_errno (error, "exchanging " LOADER "/" ENTRIES " with the new set");

      if (refusal != NULL)
        {
          log_event (LOG_WARNING, NULL,
                     "%s: switching the entries one at a time, without an atomic swap "
                     "(\"atomic\": false)",
                     refusal);
          if (!swap_merge (loader_dfd, error))
            return prefix_error (error, "switching the entries one at a time (%s): ", refusal);
          how = g_strdup_printf ("not atomic: %s; the entries were moved one at a time", refusal);
        }
      else
        log_event (LOG_INFO, NULL, "exchanged " LOADER "/" ENTRIES " with the new set atomically");
    }
  boot_fsync_after_commit (loader_dfd, LOADER);
  *ret_how = g_steal_pointer (&how);
  return TRUE;
}

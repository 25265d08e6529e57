#include "config.h"

#include "boot-config.h"
#include "boot-config-private.h"
#include "errors.h"
#include "fsutil.h"
#include "journal.h"
#include "karg.h"
#include "kernel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

const char *
boot_mode_to_string (BootMode mode)
{
  switch (mode)
    {
    case BOOT_MODE_SYMLINK:
      return "symlink";
    case BOOT_MODE_EXCHANGE:
      return "exchange";
    case BOOT_MODE_NONE:
    default:
      return "none";
    }
}

void
boot_config_free (BootConfig *config)
{
  if (config == NULL)
    return;
  g_ptr_array_unref (config->entries);
  g_ptr_array_unref (config->warnings);
  g_free (config->entries_path);
  g_free (config->atomic_reason);
  g_free (config->live_fingerprint);
  g_free (config);
}

/* The live loader.N, from the symlink; anything but "loader.0" or
 * "loader.1" is refused, so a planted link can never point us elsewhere. */
static gboolean
read_loader_link (int boot_dfd, int *ret_version, GError **error)
{
  char target[32];
  ssize_t n = readlinkat (boot_dfd, LOADER, target, sizeof target - 1);
  if (n < 0)
    return throw_errno (error, "reading the " LOADER " symlink");
  target[n] = '\0';
  if (strcmp (target, "loader.0") == 0)
    *ret_version = 0;
  else if (strcmp (target, "loader.1") == 0)
    *ret_version = 1;
  else
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        "the " LOADER " symlink points to \"%s\", expected loader.0 or loader.1",
                        target);
  return TRUE;
}

static gboolean
detect_mode (int boot_dfd, BootMode *ret_mode, int *ret_version, GError **error)
{
  struct stat st;
  gboolean exists;
  if (!fs_stat_optional (boot_dfd, LOADER, &st, &exists, error))
    return FALSE;
  *ret_version = -1;
  if (!exists)
    *ret_mode = BOOT_MODE_NONE;
  else if (S_ISLNK (st.st_mode))
    {
      *ret_mode = BOOT_MODE_SYMLINK;
      return read_loader_link (boot_dfd, ret_version, error);
    }
  else if (S_ISDIR (st.st_mode))
    *ret_mode = BOOT_MODE_EXCHANGE;
  else
    return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                        LOADER " is neither a symlink nor a directory");
  return TRUE;
}

static char *
entries_dir_path (BootMode mode, int version)
{
  if (mode == BOOT_MODE_SYMLINK)
    return g_strdup_printf ("loader.%d/" ENTRIES, version);
  return g_strdup (LOADER "/" ENTRIES);
}

gboolean
boot_is_entry_name (const char *name)
{
  return name[0] != '.' && g_str_has_suffix (name, ".conf");
}

/* An entry stagehand writes (and so leaves out when it carries the others
 * over: the new set brings its own). */
static gboolean
is_own_entry_name (const char *name)
{
  return boot_is_entry_name (name) && g_str_has_prefix (name, BOOT_ENTRY_PREFIX);
}

gboolean
boot_list_entry_names (int dfd, const char *what, GPtrArray **ret_names, GError **error)
{
  g_autoptr (GPtrArray) all = NULL;
  if (!fs_list_dir (dfd, what, &all, error))
    return FALSE;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < all->len; i++)
    {
      const char *n = all->pdata[i];
      if (boot_is_entry_name (n))
        g_ptr_array_add (names, g_strdup (n));
    }
  *ret_names = g_steal_pointer (&names);
  return TRUE;
}

static gboolean
load_entries (int dfd, const char *what, GPtrArray *entries, GPtrArray *warnings, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!boot_list_entry_names (dfd, what, &names, error))
    return FALSE;

  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      g_autofree char *contents = NULL;
      gsize len = 0;
      g_autoptr (GError) local_error = NULL;
      BootEntry *entry = NULL;
      gboolean readable
          = fs_read_file_at (dfd, name, FS_READ_MAX_SMALL, &contents, &len, &local_error);
      if (!readable || !boot_entry_parse (name, contents, &entry, &local_error))
        {
          if (g_str_has_prefix (name, BOOT_ENTRY_PREFIX))
            {
              g_ptr_array_add (warnings,
                               g_strdup_printf ("%s/%s: %s", what, name, local_error->message));
              continue;
            }
          entry = boot_entry_new (name);
          /* Another tool's entry is carried over as it is, whatever it is
           * (write_entry_set()): a symlink as a symlink, never followed
           * here, so it is shown without its title. Anything else that
           * cannot be read is worth a word. */
          struct stat st;
          if (!readable
              && !(fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode)))
            g_ptr_array_add (warnings,
                             g_strdup_printf ("%s/%s: another tool's entry that cannot be read: %s",
                                              what, name, local_error->message));
        }
      g_ptr_array_add (entries, entry);
    }
  boot_entries_sort (entries);
  return TRUE;
}

/* A stagehand entry whose kernel or initramfs is gone cannot boot: say so.
 * It stays in the menu (the deployment is fine; finalize copies the kernel
 * again), so this is a warning, not a parse failure. */
static void
check_entry_files (int boot_dfd, const char *what, GPtrArray *entries, GPtrArray *warnings)
{
  for (guint i = 0; i < entries->len; i++)
    {
      BootEntry *e = entries->pdata[i];
      if (!boot_entry_is_ours (e))
        continue;
      g_autoptr (GPtrArray) files = g_ptr_array_new ();
      g_ptr_array_add (files, e->linux_path);
      for (char **p = e->initrds; p && *p; p++)
        g_ptr_array_add (files, *p);
      for (guint j = 0; j < files->len; j++)
        {
          const char *f = files->pdata[j];
          const char *rel = f + strspn (f, "/");
          struct stat st;
          if (*rel == '\0' || fstatat (boot_dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0
              || !S_ISREG (st.st_mode))
            g_ptr_array_add (warnings,
                             g_strdup_printf ("%s/%s: %s %s is not a file in the boot directory",
                                              what, e->filename, j == 0 ? "linux" : "initrd", f));
        }
    }
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* What another tool could change in the live directory @path below
 * @boot_dfd (recursively: names, types, inodes, sizes, modification and
 * change times), as one string; "" when it does not exist. Two equal
 * fingerprints mean nothing was added, removed, renamed or rewritten. */
static gboolean
append_fingerprint (int dfd, const char *path, GString *out, guint depth, GError **error)
{
  struct stat st;
  if (fstat (dfd, &st) < 0)
    return throw_errno (error, "reading %s", path);
  g_string_append_printf (out, "%s/ %lu %ld.%09ld %ld.%09ld\n", path, (gulong)st.st_ino,
                          (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long)st.st_ctim.tv_sec,
                          st.st_ctim.tv_nsec);
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (dfd, path, &names, error))
    return FALSE;
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return throw_errno (error, "reading %s/%s", path, name);
      g_string_append_printf (out, "%s/%s %o %lu %lld %ld.%09ld %ld.%09ld\n", path, name,
                              (guint)st.st_mode, (gulong)st.st_ino, (long long)st.st_size,
                              (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long)st.st_ctim.tv_sec,
                              st.st_ctim.tv_nsec);
      if (S_ISDIR (st.st_mode) && depth < 16)
        {
          g_autofree char *sub_path = g_strdup_printf ("%s/%s", path, name);
          autofd sub = -1;
          if (!fs_opendir_at (dfd, name, &sub, error)
              || !append_fingerprint (sub, sub_path, out, depth + 1, error))
            return FALSE;
        }
    }
  return TRUE;
}

static gboolean
live_fingerprint (int boot_dfd, const char *path, char **ret_fingerprint, GError **error)
{
  autofd dfd = -1;
  if (!fs_opendir_at_optional (boot_dfd, path, &dfd, error))
    return FALSE;
  g_autoptr (GString) out = g_string_new (NULL);
  if (dfd >= 0 && !append_fingerprint (dfd, path, out, 0, error))
    return FALSE;
  *ret_fingerprint = g_string_free (g_steal_pointer (&out), FALSE);
  return TRUE;
}

/* The live directory a new set is built from: loader.N (entries and what
 * lies beside them) in symlink mode, loader/entries in exchange mode. */
static char *
live_source_path (BootMode mode, int version)
{
  if (mode == BOOT_MODE_SYMLINK)
    return g_strdup_printf ("loader.%d", version);
  return g_strdup (LOADER "/" ENTRIES);
}

gboolean
boot_config_load (int boot_dfd, BootConfig **ret_config, GError **error)
{
  g_autoptr (BootConfig) config = g_new0 (BootConfig, 1);
  config->entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  config->warnings = g_ptr_array_new_with_free_func (g_free);
  if (!detect_mode (boot_dfd, &config->mode, &config->version, error))
    return prefix_error (error, "reading the boot configuration: ");
  if (config->mode == BOOT_MODE_SYMLINK)
    {
      config->atomic = TRUE;
      config->atomic_reason = g_strdup ("a new symlink is renamed over " LOADER);
    }
  else if (config->mode == BOOT_MODE_EXCHANGE)
    {
      config->atomic = boot_exchange_expect_atomic_at (boot_dfd, &config->atomic_reason);
      struct stat st;
      if (fstatat (boot_dfd, EXCHANGE_OLD, &st, AT_SYMLINK_NOFOLLOW) == 0)
        {
          config->switch_interrupted = TRUE;
          g_ptr_array_add (config->warnings,
                           g_strdup (EXCHANGE_OLD
                                     ": a switch of the entries one at a time was "
                                     "interrupted, so the menu may hold entries of the old and "
                                     "the new set; the next cleanup, stage, finalize or rollback "
                                     "writes it whole again"));
        }
    }
  if (config->mode != BOOT_MODE_NONE)
    {
      /* First, so a change from now on is seen before the commit point.
       * Not an error here, it stays NULL: status, run by any user, may
       * not be able to read all of it (a 0700 keys/); a swap reads it
       * again and fails there, or retries. */
      g_autofree char *source = live_source_path (config->mode, config->version);
      (void)live_fingerprint (boot_dfd, source, &config->live_fingerprint, NULL);
      g_autofree char *path = entries_dir_path (config->mode, config->version);
      autofd dfd = -1;
      if (!fs_opendir_at_optional (boot_dfd, path, &dfd, error))
        return prefix_error (error, "reading the boot configuration: ");
      if (dfd >= 0 && !load_entries (dfd, path, config->entries, config->warnings, error))
        return prefix_error (error, "reading the boot configuration: ");
      check_entry_files (boot_dfd, path, config->entries, config->warnings);
      config->entries_path = g_steal_pointer (&path);
    }
  *ret_config = g_steal_pointer (&config);
  return TRUE;
}

BootMode
boot_mode_for_filesystem (long f_type)
{
  return f_type == MSDOS_SUPER_MAGIC ? BOOT_MODE_EXCHANGE : BOOT_MODE_SYMLINK;
}

static gboolean
create_symlink_layout (int boot_dfd, GError **error)
{
  if (!fs_ensure_dir_at (boot_dfd, "loader.0", 0755, error)
      || !fs_ensure_dir_at (boot_dfd, "loader.0/" ENTRIES, 0755, error))
    return FALSE;
  g_autofree char *tmp = fs_temp_name (LOADER);
  if (symlinkat ("loader.0", boot_dfd, tmp) < 0)
    return throw_errno (error, "creating the " LOADER " symlink");
  if (renameat (boot_dfd, tmp, boot_dfd, LOADER) < 0)
    {
      throw_errno (error, "creating the " LOADER " symlink");
      (void)unlinkat (boot_dfd, tmp, 0); /* best effort: our own temp link */
      return FALSE;
    }
  return TRUE;
}

gboolean
boot_config_init (int boot_dfd, BootMode requested, GError **error)
{
  BootMode mode;
  int version;
  if (!detect_mode (boot_dfd, &mode, &version, error))
    return FALSE;

  struct statfs sfs;
  if (fstatfs (boot_dfd, &sfs) < 0)
    return throw_errno (error, "checking the boot filesystem");
  BootMode natural = boot_mode_for_filesystem (sfs.f_type);
  if (requested == BOOT_MODE_SYMLINK && natural == BOOT_MODE_EXCHANGE)
    return throw_error (
        error, STAGEHAND_ERROR_INVALID,
        "the boot directory is on vfat, which has no symlinks: use --mode=exchange");
  /* Converting is explicit: an existing layout is never rewritten. */
  if (mode != BOOT_MODE_NONE && requested != BOOT_MODE_NONE && requested != mode)
    return throw_error (
        error, STAGEHAND_ERROR_STATE,
        "the boot directory already uses %s mode; stagehand does not convert an "
        "existing layout (move loader* out of the boot directory and run init again to start over)",
        boot_mode_to_string (mode));

  if (!fs_ensure_dir_at (boot_dfd, BOOT_KERNEL_DIR, 0755, error))
    return FALSE;
  if (mode == BOOT_MODE_NONE)
    mode = requested != BOOT_MODE_NONE ? requested : natural;
  if (mode == BOOT_MODE_EXCHANGE)
    {
      /* loader/ may already exist (systemd-boot's loader.conf lives there);
       * entries/ appears last, so an interrupted init is completed by the
       * next one. */
      if (!fs_ensure_dir_at (boot_dfd, LOADER, 0755, error)
          || !fs_ensure_dir_at (boot_dfd, LOADER "/" ENTRIES, 0755, error))
        return FALSE;
    }
  else if (version < 0 && !create_symlink_layout (boot_dfd, error))
    return FALSE;
  return fs_fsync_fd (boot_dfd, "the boot directory", error);
}

BootEntry *
boot_entry_new_for_origin (const Origin *origin, guint priority)
{
  g_autofree char *filename
      = g_strdup_printf (BOOT_ENTRY_PREFIX "%u-%s-%s.conf", priority, origin->os, origin->id);
  BootEntry *e = boot_entry_new (filename);
  e->title = g_strdup_printf ("%s (%s %s)", origin->title, origin->os, origin->id);
  /* The priority leads the version so the menu order is ours whatever the
   * os versions are; the os version follows for people reading the menu. */
  e->version = origin->version ? g_strdup_printf ("%u-%s", priority, origin->version)
                               : g_strdup_printf ("%u", priority);
  for (char *p = e->version; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '-' && *p != '~' && *p != '^' && *p != '_')
      *p = '_';
  e->sort_key = g_strdup (BOOT_ENTRY_SORT_KEY);
  g_autofree char *dir = origin_boot_dir_name (origin);
  e->linux_path = g_strdup_printf ("/" BOOT_KERNEL_DIR "/%s/" KERNEL_BOOT_FILE, dir);
  g_autoptr (GPtrArray) initrds = g_ptr_array_new ();
  if (origin->initramfs_path)
    g_ptr_array_add (initrds,
                     g_strdup_printf ("/" BOOT_KERNEL_DIR "/%s/" INITRAMFS_BOOT_FILE, dir));
  g_ptr_array_add (initrds, NULL);
  e->initrds = (char **)g_ptr_array_free (g_steal_pointer (&initrds), FALSE);
  /* stagehand= first: a boot loader or a kernel that cuts a long command
   * line short (x86 keeps 2047 bytes) then cuts the last of the other
   * arguments, not the one that names the root (issue 14). */
  g_autofree char *kargs = g_strjoinv (" ", origin->kargs);
  e->options = g_strdup_printf (KARG_DEPLOYMENT_KEY "=/stagehand/deploy/%s/%s%s%s", origin->os,
                                origin->id, *kargs ? " " : "", kargs);
  return e;
}

/* What a carry-over leaves out of a directory, because the new set brings
 * its own. */
typedef enum
{
  CARRY_EVERYTHING,         /* below the two directories we write: copied whole */
  CARRY_BESIDE_ENTRIES,     /* loader.N/: entries/ is the new set's */
  CARRY_BESIDE_OWN_ENTRIES, /* entries/: stagehand's entries are written from the plan */
} CarryScope;

static gboolean carry_over (int src_dfd, const char *src_path, int dest_dfd, const char *dest_path,
                            CarryScope scope, GError **error);

/* A copy of the directory @name and everything below it, with the mode it
 * had (mkdirat() applies the umask); vfat refuses fchmod() and has no modes
 * to keep. */
static gboolean
carry_dir (int src_dfd, const char *src_path, int dest_dfd, const char *dest_path, const char *name,
           mode_t mode, GError **error)
{
  g_autofree char *src_sub_path = g_strdup_printf ("%s/%s", src_path, name);
  g_autofree char *dest_sub_path = g_strdup_printf ("%s/%s", dest_path, name);
  autofd src_sub = -1, dest_sub = -1;
  if (!fs_opendir_at (src_dfd, name, &src_sub, error))
    return prefix_error (error, "carrying %s over: ", src_sub_path);
  if (mkdirat (dest_dfd, name, 0700) < 0)
    return throw_errno (error, "carrying %s over: creating %s", src_sub_path, dest_sub_path);
  if (!fs_opendir_at (dest_dfd, name, &dest_sub, error))
    return prefix_error (error, "carrying %s over: ", src_sub_path);
  if (!carry_over (src_sub, src_sub_path, dest_sub, dest_sub_path, CARRY_EVERYTHING, error))
    return FALSE;
  /* The mode last: a directory without write permission is filled first. */
  if (fchmod (dest_sub, mode) < 0 && !(errno == EPERM && fs_is_vfat (dest_sub)))
    return throw_errno (error, "carrying %s over: setting the mode of %s", src_sub_path,
                        dest_sub_path);
  if (!fs_fsync_fd (dest_sub, dest_sub_path, error))
    return prefix_error (error, "carrying %s over: ", src_sub_path);
  return TRUE;
}

/* A copy of the symlink @name below @src_dfd as @name below @dest_dfd. */
static gboolean
carry_symlink (int src_dfd, int dest_dfd, const char *name, GError **error)
{
  /* st_size is the target's length on the filesystems /boot uses, but a
   * link can change between the stat and the read: grow until it fits. */
  for (gsize size = 256; size <= 65536; size *= 2)
    {
      g_autofree char *target = g_malloc (size);
      ssize_t n = readlinkat (src_dfd, name, target, size);
      if (n < 0)
        return throw_errno (error, "reading the symlink");
      if ((gsize)n == size)
        continue;
      target[n] = '\0';
      if (symlinkat (target, dest_dfd, name) < 0)
        return throw_errno (error, "creating the symlink");
      return TRUE;
    }
  return throw_error (error, STAGEHAND_ERROR_FAILED, "the symlink's target is too long");
}

/* Copies what other tools keep in the live loader directory into the new
 * one: systemd-boot's loader.conf, entries.srel, a README, a keys/ tree.
 * The new set replaces the live directory whole, so whatever is not copied
 * here is gone after the swap. Regular files are copied byte for byte with
 * their mode (temp + fdatasync + rename + fsync of the directory),
 * directories recursively, symlinks as symlinks (never followed). A FIFO,
 * socket or device node has no content to carry and is left out with a
 * warning: one must not stop every update. A file that cannot be read
 * fails the write, before the commit point, rather than be dropped.
 * Ownership is not copied: everything in <boot> is written by root.
 * Stagehand's own temp names (an interrupted run) are not carried. */
static gboolean
carry_over (int src_dfd, const char *src_path, int dest_dfd, const char *dest_path,
            CarryScope scope, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (src_dfd, src_path, &names, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      /* Nothing else is left out, whatever its name: not even one that
       * looks like a temp name, since stagehand writes its temp names
       * only into the new set (which becomes live only complete, its temp
       * files renamed or removed), never into a live directory. */
      if (scope == CARRY_BESIDE_ENTRIES && strcmp (name, ENTRIES) == 0)
        continue;
      if (scope == CARRY_BESIDE_OWN_ENTRIES && is_own_entry_name (name))
        continue;

      struct stat st;
      if (fstatat (src_dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return throw_errno (error, "carrying %s/%s over", src_path, name);
      if (S_ISREG (st.st_mode))
        {
          if (!fs_copy_file_atomic_at (src_dfd, name, dest_dfd, name, st.st_mode & 07777, error))
            return prefix_error (error, "carrying %s/%s over: ", src_path, name);
        }
      else if (S_ISDIR (st.st_mode))
        {
          if (!carry_dir (src_dfd, src_path, dest_dfd, dest_path, name, st.st_mode & 07777, error))
            return FALSE;
        }
      else if (S_ISLNK (st.st_mode))
        {
          if (!carry_symlink (src_dfd, dest_dfd, name, error))
            return prefix_error (error, "carrying %s/%s over: ", src_path, name);
        }
      /* A FIFO, socket or device node: made again, with its mode; where
       * the filesystem cannot hold one (vfat), left out with a warning:
       * it has no content to lose, and must not stop every update. */
      else if (mknodat (dest_dfd, name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0)
        log_event (LOG_WARNING, NULL,
                   "%s/%s is neither a file, a directory nor a symlink, and cannot be made in "
                   "the new boot configuration (%s): not carried over",
                   src_path, name, g_strerror (errno));
    }
  return TRUE;
}

/* Writes @entries into a fresh directory @entries_path, created below a
 * fresh @top (the same directory in exchange mode; loader.M in symlink
 * mode), and carries over what else the live @live_top (loader.N, or NULL
 * in exchange mode, where loader/ itself stays) and @live_entries_path
 * hold; fsyncs every file and every directory. */
static gboolean
write_entry_set (int boot_dfd, const char *top, const char *entries_path, const char *live_top,
                 const char *live_entries_path, GPtrArray *entries, GError **error)
{
  /* A leftover from an interrupted run is not live: start over. */
  if (!fs_rm_rf_at (boot_dfd, top, error))
    return FALSE;
  if (mkdirat (boot_dfd, top, 0755) < 0)
    return throw_errno (error, "creating %s", top);
  if (strcmp (top, entries_path) != 0 && mkdirat (boot_dfd, entries_path, 0755) < 0)
    return throw_errno (error, "creating %s", entries_path);
  autofd entries_dfd = -1;
  if (!fs_opendir_at (boot_dfd, entries_path, &entries_dfd, error))
    return FALSE;
  autofd top_dfd = -1;
  if (!fs_opendir_at (boot_dfd, top, &top_dfd, error))
    return FALSE;

  autofd live_top_dfd = -1, live_entries_dfd = -1;
  if ((live_top != NULL && !fs_opendir_at_optional (boot_dfd, live_top, &live_top_dfd, error))
      || !fs_opendir_at_optional (boot_dfd, live_entries_path, &live_entries_dfd, error))
    return FALSE;
  if (live_top_dfd >= 0
      && !carry_over (live_top_dfd, live_top, top_dfd, top, CARRY_BESIDE_ENTRIES, error))
    return FALSE;
  if (live_entries_dfd >= 0
      && !carry_over (live_entries_dfd, live_entries_path, entries_dfd, entries_path,
                      CARRY_BESIDE_OWN_ENTRIES, error))
    return FALSE;

  /* Another tool's entries came with the carry-over, as they are. */
  for (guint i = 0; i < entries->len; i++)
    {
      BootEntry *e = entries->pdata[i];
      g_assert (boot_entry_is_ours (e));
      g_autofree char *data = boot_entry_to_data (e);
      if (!fs_write_file_atomic_at (entries_dfd, e->filename, data, strlen (data), 0644,
                                    FS_WRITE_SYNC, error))
        return prefix_error (error, "writing entry %s/%s: ", entries_path, e->filename);
    }
  if (!fs_fsync_fd (entries_dfd, entries_path, error) || !fs_fsync_fd (top_dfd, top, error))
    return FALSE;
  return TRUE;
}

void
boot_fsync_after_commit (int dfd, const char *what)
{
  g_autoptr (GError) local_error = NULL;
  if (!fs_fsync_fd (dfd, what, &local_error))
    log_event (LOG_WARNING, NULL, "after the swap: %s", local_error->message);
}

/* A swap that fails before its commit point leaves <boot> as it was: the
 * new set never became live (on every failure path of the swaps below it
 * is still the inactive one), so it goes. Best effort: the caller reports
 * the swap's error, and the next finalize or cleanup removes it anyway. */
static void
discard_new_set (int boot_dfd, const char *top)
{
  (void)fs_rm_rf_at (boot_dfd, top, NULL);
}

/* Symlink mode: a new symlink renamed over <boot>/loader. */
static gboolean
swap_symlink (int boot_dfd, const char *new_dir, char **ret_how, GError **error)
{
  g_autofree char *tmp = fs_temp_name (LOADER);
  if (symlinkat (new_dir, boot_dfd, tmp) < 0)
    return throw_errno (error, "creating a symlink to %s", new_dir);
  /* The commit point. */
  if (renameat (boot_dfd, tmp, boot_dfd, LOADER) < 0)
    {
      throw_errno (error, "renaming the symlink over " LOADER);
      (void)unlinkat (boot_dfd, tmp, 0); /* best effort: our own temp link */
      return FALSE;
    }
  boot_fsync_after_commit (boot_dfd, "the boot directory");
  *ret_how = g_strdup ("atomic: a new symlink renamed over " LOADER);
  return TRUE;
}

gboolean
boot_config_swap (int boot_dfd, int sysroot_dfd, const BootConfig *current, GPtrArray *entries,
                  Verdict *timings, GError **error)
{
  if (current->mode == BOOT_MODE_NONE)
    return throw_error (error, STAGEHAND_ERROR_NOT_INITIALIZED,
                        "the boot directory has no loader (run 'stagehand init')");

  /* Symlink mode writes the inactive loader.M; exchange mode writes
   * loader/entries.new. */
  g_autofree char *top = current->mode == BOOT_MODE_SYMLINK
                             ? g_strdup_printf ("loader.%d", 1 - current->version)
                             : g_strdup (EXCHANGE_NEW);
  g_autofree char *entries_path
      = current->mode == BOOT_MODE_SYMLINK ? g_strdup_printf ("%s/" ENTRIES, top) : g_strdup (top);

  /* What the live set holds beside the entries goes into the new one. */
  g_autofree char *live_top
      = current->mode == BOOT_MODE_SYMLINK ? g_strdup_printf ("loader.%d", current->version) : NULL;
  g_autofree char *live_entries_path = entries_dir_path (current->mode, current->version);

  verdict_begin_step (timings, "write-entries");
  if (!write_entry_set (boot_dfd, top, entries_path, live_top, live_entries_path, entries, error))
    {
      discard_new_set (boot_dfd, top);
      return prefix_error (error, "writing the new entry set: ");
    }
  verdict_end_step (timings);

  verdict_begin_step (timings, "sync");
  if (!fs_syncfs (boot_dfd, "the boot filesystem", error)
      || !fs_syncfs (sysroot_dfd, "the sysroot filesystem", error))
    {
      discard_new_set (boot_dfd, top);
      return FALSE;
    }
  verdict_end_step (timings);

  verdict_begin_step (timings, "swap");
  /* The new set is a copy of what the live directory held when it was
   * read (@current), so an entry another tool wrote there since would be
   * gone after the swap: look again right before the commit point, and let
   * the caller read it again and retry. (What changes between this look
   * and the rename, microseconds, is still lost: other tools do not take
   * our lock.) */
  g_autofree char *source = live_source_path (current->mode, current->version);
  g_autofree char *now = NULL;
  if (!live_fingerprint (boot_dfd, source, &now, error))
    {
      discard_new_set (boot_dfd, top);
      return prefix_error (error, "swapping the boot configuration: ");
    }
  if (g_strcmp0 (now, current->live_fingerprint) != 0)
    {
      discard_new_set (boot_dfd, top);
      return throw_error (error, STAGEHAND_ERROR_CHANGED,
                          "swapping the boot configuration: another tool changed %s while the "
                          "new entry set was written",
                          source);
    }
  g_autofree char *how = NULL;
  gboolean ok = current->mode == BOOT_MODE_SYMLINK ? swap_symlink (boot_dfd, top, &how, error)
                                                   : boot_swap_exchange (boot_dfd, &how, error);
  if (!ok)
    {
      discard_new_set (boot_dfd, top);
      return prefix_error (error, "swapping the boot configuration: ");
    }
  verdict_end_step (timings);
  if (timings != NULL)
    {
      g_free (timings->switched);
      timings->switched = g_steal_pointer (&how);
    }
  return TRUE;
}

gboolean
boot_config_tidy (int boot_dfd, GError **error)
{
  BootMode mode;
  int version;
  if (!detect_mode (boot_dfd, &mode, &version, error))
    return FALSE;
  if (mode == BOOT_MODE_SYMLINK)
    {
      g_autofree char *old = g_strdup_printf ("loader.%d", 1 - version);
      return fs_rm_rf_at (boot_dfd, old, error);
    }
  if (mode == BOOT_MODE_EXCHANGE)
    return fs_rm_rf_at (boot_dfd, EXCHANGE_NEW, error)
           && fs_rm_rf_at (boot_dfd, EXCHANGE_OLD, error);
  return TRUE;
}

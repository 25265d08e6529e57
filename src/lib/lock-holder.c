/* Who holds the sysroot lock: the holder's own record in the lock file,
 * trusted only when the kernel confirms it (/proc/<pid>/fdinfo lists the
 * lock, with the same process start time and boot id), else a scan of /proc
 * for the real holder; and the refusal to wait for this process itself or
 * one of its ancestors. See the top of lock.c for why. */
#include "config.h"

#include "lock-private.h"
#include "errors.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Bounds on what we read from files others may control. */
#define METADATA_MAX_BYTES 65536
#define COMMAND_MAX_BYTES 256
#define ANCESTOR_MAX_DEPTH 4096

#define METADATA_GROUP "lock"

void
lock_holder_free (LockHolder *holder)
{
  if (holder == NULL)
    return;
  g_free (holder->command);
  g_free (holder->operation);
  g_free (holder->boot_id);
  g_free (holder);
}

/* ------------------------------------------------------------------ /proc */

/* Reads at most @max bytes of a /proc file. NULL if it cannot be read (the
 * process is gone, or we may not look at it): callers treat that as "not
 * this one", never as an error. NUL-terminated; *ret_len excludes the NUL. */
char *
lock_proc_read (const char *path, gsize max, gsize *ret_len)
{
  autofd fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return NULL;
  g_autofree char *buf = g_malloc (max + 1);
  gsize len = 0;
  while (len < max)
    {
      ssize_t n = read (fd, buf + len, max - len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      len += n;
    }
  buf[len] = '\0';
  if (ret_len)
    *ret_len = len;
  return g_steal_pointer (&buf);
}

/* Makes text from a process (its argv, or metadata it wrote) safe for a
 * one-line message: no control characters (a terminal escape in someone's
 * argv must not reach the admin's terminal), valid UTF-8, bounded length. */
static char *
sanitize_text (const char *text, gsize len)
{
  gsize n = MIN (len, COMMAND_MAX_BYTES);
  g_autofree char *copy = g_strndup (text, n);
  for (char *p = copy; *p; p++)
    if ((guchar)*p < 0x20 || (guchar)*p == 0x7f)
      *p = '?';
  g_autofree char *valid = g_utf8_make_valid (copy, -1);
  if (len <= COMMAND_MAX_BYTES)
    return g_steal_pointer (&valid);
  /* Cut at a character boundary: the byte cut above may have split one,
   * which g_utf8_make_valid() turned into U+FFFD; that is fine for a hint. */
  return g_strconcat (valid, "…", NULL);
}

/* The command line of @pid, arguments separated by spaces. NULL if it cannot
 * be read; "" for a kernel thread or a zombie. */
static char *
proc_command (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/cmdline", (int)pid);
  gsize len = 0;
  g_autofree char *raw = lock_proc_read (path, PROC_FILE_MAX_BYTES, &len);
  if (raw == NULL)
    return NULL;
  while (len > 0 && raw[len - 1] == '\0')
    len--;
  for (gsize i = 0; i < len; i++)
    if (raw[i] == '\0')
      raw[i] = ' ';
  return sanitize_text (raw, len);
}

static gboolean
proc_parent (pid_t pid, pid_t *ret_ppid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int)pid);
  g_autofree char *status = lock_proc_read (path, PROC_FILE_MAX_BYTES, NULL);
  if (status == NULL)
    return FALSE;
  const char *line = strstr (status, "\nPPid:");
  if (line == NULL)
    return FALSE;
  char *end = NULL;
  gint64 ppid = g_ascii_strtoll (line + strlen ("\nPPid:"), &end, 10);
  if (end == line + strlen ("\nPPid:") || ppid < 0 || ppid > G_MAXINT)
    return FALSE;
  *ret_ppid = (pid_t)ppid;
  return TRUE;
}

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks since boot:
 * together with the boot id it tells a pid from a later reuse of it. */
static gboolean
proc_start_ticks (pid_t pid, guint64 *ret_ticks)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int)pid);
  g_autofree char *stat = lock_proc_read (path, PROC_FILE_MAX_BYTES, NULL);
  if (stat == NULL)
    return FALSE;
  /* The command name in parentheses may itself contain spaces and ')'. */
  const char *p = strrchr (stat, ')');
  if (p == NULL)
    return FALSE;
  g_auto (GStrv) fields = g_strsplit_set (p + 1, " \n", -1);
  /* fields[0] is the empty string before the space; fields[1] is field 3. */
  if (g_strv_length (fields) < 21)
    return FALSE;
  char *end = NULL;
  guint64 ticks = g_ascii_strtoull (fields[20], &end, 10);
  if (end == fields[20] || *end != '\0')
    return FALSE;
  *ret_ticks = ticks;
  return TRUE;
}

static char *
read_boot_id (void)
{
  g_autofree char *raw = lock_proc_read ("/proc/sys/kernel/random/boot_id", 128, NULL);
  if (raw == NULL)
    return NULL;
  return g_strdup (g_strstrip (raw));
}

/* The pids of this process's ancestors, parent first. */
static GArray *
ancestor_pids (void)
{
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  pid_t cur = getppid ();
  for (guint depth = 0; cur > 0 && depth < ANCESTOR_MAX_DEPTH; depth++)
    {
      g_array_append_val (pids, cur);
      pid_t parent;
      if (cur == 1 || !proc_parent (cur, &parent) || parent == cur)
        break;
      cur = parent;
    }
  return pids;
}

static gboolean
pid_array_contains (GArray *pids, pid_t pid)
{
  for (guint i = 0; i < pids->len; i++)
    if (g_array_index (pids, pid_t, i) == pid)
      return TRUE;
  return FALSE;
}

/* --------------------------------------------------------- fdinfo locks */

/* The "mnt_id:" field of an fdinfo file, or -1. */
int
lock_fdinfo_mnt_id (const char *fdinfo)
{
  const char *p = g_str_has_prefix (fdinfo, "mnt_id:") ? fdinfo : strstr (fdinfo, "\nmnt_id:");
  if (p == NULL)
    return -1;
  p = strchr (p + 1, ':') + 1;
  char *end = NULL;
  gint64 v = g_ascii_strtoll (p, &end, 10);
  if (end == p || v < 0 || v > G_MAXINT)
    return -1;
  return (int)v;
}

/* TRUE if the fdinfo text shows a lock that conflicts with our write lock on
 * the lock file: an OFD or POSIX lock, read or write (our lock covers the
 * whole file). flock() locks do not conflict with fcntl locks on Linux. */
static gboolean
fdinfo_holds_lock (const char *fdinfo, const LockFileId *id)
{
  int mnt_id = -2;
  const char *line = fdinfo;
  while (line != NULL && *line != '\0')
    {
      if (g_str_has_prefix (line, "lock:"))
        {
          char kind[16], mode[16], type[16];
          int lpid;
          unsigned int maj, min;
          unsigned long long ino;
          if (sscanf (line, "lock: %*[^:]: %15s %15s %15s %d %x:%x:%llu", kind, mode, type, &lpid,
                      &maj, &min, &ino)
                  == 7
              && (strcmp (kind, "OFDLCK") == 0 || strcmp (kind, "POSIX") == 0)
              && (strcmp (type, "WRITE") == 0 || strcmp (type, "READ") == 0)
              && ino == (unsigned long long)id->ino)
            {
              if (makedev (maj, min) == id->dev)
                return TRUE;
              if (mnt_id == -2)
                mnt_id = lock_fdinfo_mnt_id (fdinfo);
              if (mnt_id >= 0 && mnt_id == id->mnt_id)
                return TRUE;
            }
        }
      line = strchr (line, '\n');
      if (line != NULL)
        line++;
    }
  return FALSE;
}

/* TRUE if one of @pid's fds holds a conflicting lock on the lock file. A
 * process we may not inspect is reported as not holding it. */
static gboolean
process_holds_lock (int proc_dfd, pid_t pid, const LockFileId *id)
{
  g_autofree char *name = g_strdup_printf ("%d/fdinfo", (int)pid);
  int dfd = openat (proc_dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return FALSE;
  DIR *d = fdopendir (dfd);
  if (d == NULL)
    {
      (void)close (dfd); /* read-only directory fd: nothing to report */
      return FALSE;
    }
  gboolean found = FALSE;
  struct dirent *de;
  while (!found && (de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      autofd fd = openat (dirfd (d), de->d_name, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        continue; /* the fd was closed meanwhile */
      char buf[PROC_FILE_MAX_BYTES + 1];
      ssize_t n;
      do
        n = read (fd, buf, sizeof buf - 1);
      while (n < 0 && errno == EINTR);
      if (n <= 0)
        continue;
      buf[n] = '\0';
      found = fdinfo_holds_lock (buf, id);
    }
  closedir (d);
  return found;
}

/* Every process with an fd through which the lock is held. Several processes
 * share it when a holder forked without exec (the fd is O_CLOEXEC, so an
 * exec'd child never inherits it). */
static GArray *
find_holder_pids (int proc_dfd, const LockFileId *id)
{
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  int dup_fd = fcntl (proc_dfd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd < 0)
    return pids;
  DIR *d = fdopendir (dup_fd);
  if (d == NULL)
    {
      (void)close (dup_fd); /* read-only directory fd: nothing to report */
      return pids;
    }
  rewinddir (d); /* the dup shares its offset with @proc_dfd */
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      char *end = NULL;
      gint64 v = g_ascii_strtoll (de->d_name, &end, 10);
      if (end == de->d_name || *end != '\0' || v <= 0 || v > G_MAXINT)
        continue;
      pid_t pid = (pid_t)v;
      if (process_holds_lock (proc_dfd, pid, id))
        g_array_append_val (pids, pid);
    }
  closedir (d);
  return pids;
}

/* ------------------------------------------------------------- metadata */

void
lock_metadata_self_init (MetadataSelf *self)
{
  self->pid = getpid ();
  if (!proc_start_ticks (self->pid, &self->start_ticks))
    self->start_ticks = 0;
  self->command = proc_command (self->pid);
  self->boot_id = read_boot_id ();
}

void
lock_metadata_self_clear (MetadataSelf *self)
{
  g_clear_pointer (&self->command, g_free);
  g_clear_pointer (&self->boot_id, g_free);
}

char *
lock_metadata_format (const MetadataSelf *self, const char *operation)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_int64 (kf, METADATA_GROUP, "pid", self->pid);
  if (self->start_ticks != 0)
    g_key_file_set_uint64 (kf, METADATA_GROUP, "process_start_ticks", self->start_ticks);
  g_key_file_set_string (kf, METADATA_GROUP, "command", self->command ? self->command : "");
  g_key_file_set_string (kf, METADATA_GROUP, "operation", operation);
  g_key_file_set_int64 (kf, METADATA_GROUP, "start_time_usec", g_get_real_time ());
  if (self->boot_id != NULL)
    g_key_file_set_string (kf, METADATA_GROUP, "boot_id", self->boot_id);
  return g_key_file_to_data (kf, NULL, NULL);
}

/* What the lock file says about its holder, unverified. NULL when it says
 * nothing usable (empty after a clean release, or not ours). */
static LockHolder *
metadata_read (int fd, guint64 *ret_ticks)
{
  g_autofree char *buf = g_malloc (METADATA_MAX_BYTES + 1);
  ssize_t n;
  do
    n = pread (fd, buf, METADATA_MAX_BYTES, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return NULL;
  buf[n] = '\0';

  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, buf, n, G_KEY_FILE_NONE, NULL))
    return NULL;
  g_autoptr (GError) local_error = NULL;
  gint64 pid = g_key_file_get_int64 (kf, METADATA_GROUP, "pid", &local_error);
  if (local_error != NULL || pid <= 0 || pid > G_MAXINT)
    return NULL;
  g_autofree char *command = g_key_file_get_string (kf, METADATA_GROUP, "command", NULL);
  g_autofree char *operation = g_key_file_get_string (kf, METADATA_GROUP, "operation", NULL);

  LockHolder *holder = g_new0 (LockHolder, 1);
  holder->pid = (pid_t)pid;
  holder->command = command ? sanitize_text (command, strlen (command)) : g_strdup ("");
  holder->operation
      = operation ? sanitize_text (operation, strlen (operation)) : g_strdup ("unknown");
  holder->start_time = g_key_file_get_int64 (kf, METADATA_GROUP, "start_time_usec", NULL);
  holder->boot_id = g_key_file_get_string (kf, METADATA_GROUP, "boot_id", NULL);
  *ret_ticks = g_key_file_get_uint64 (kf, METADATA_GROUP, "process_start_ticks", NULL);
  return holder;
}

/* The metadata is believed only if it is from this boot, its pid is the same
 * process that wrote it (not a reuse of the number), and that process holds
 * the lock right now. */
static gboolean
metadata_verify (int proc_dfd, const LockHolder *md, guint64 md_ticks, const LockFileId *id)
{
  g_autofree char *boot_id = read_boot_id ();
  if (md->boot_id == NULL || boot_id == NULL || strcmp (md->boot_id, boot_id) != 0)
    return FALSE;
  guint64 ticks;
  if (md_ticks == 0 || !proc_start_ticks (md->pid, &ticks) || ticks != md_ticks)
    return FALSE;
  return process_holds_lock (proc_dfd, md->pid, id);
}

/* ------------------------------------------------------ naming a holder */

static LockHolder *
holder_from_proc (pid_t pid)
{
  LockHolder *holder = g_new0 (LockHolder, 1);
  holder->pid = pid;
  holder->command = pid > 0 ? proc_command (pid) : NULL;
  if (holder->command == NULL)
    holder->command = g_strdup ("");
  holder->operation = g_strdup ("unknown");
  return holder;
}

/* Names whoever holds the lock on @fd and lists every process holding it
 * (*ret_pids). @kernel_pid is F_OFD_GETLK's l_pid when the conflicting lock
 * is a classic POSIX lock (OFD locks report -1). Returns a holder with pid 0
 * when nobody can be identified (we may not inspect the holder, or it
 * released the lock meanwhile). */
LockHolder *
lock_identify_holder (int fd, const LockFileId *id, pid_t kernel_pid, GArray **ret_pids)
{
  autofd proc_dfd = open ("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_autoptr (GArray) pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  if (proc_dfd < 0)
    {
      *ret_pids = g_steal_pointer (&pids);
      return holder_from_proc (kernel_pid > 0 ? kernel_pid : 0);
    }

  guint64 md_ticks = 0;
  g_autoptr (LockHolder) md = metadata_read (fd, &md_ticks);
  if (md != NULL && metadata_verify (proc_dfd, md, md_ticks, id))
    {
      md->from_metadata = TRUE;
      g_array_append_val (pids, md->pid);
      /* This process may hold it too, through an fd inherited across a
       * fork from the holder: that is a deadlock the metadata cannot show. */
      pid_t self = getpid ();
      if (self != md->pid && process_holds_lock (proc_dfd, self, id))
        g_array_append_val (pids, self);
      *ret_pids = g_steal_pointer (&pids);
      return g_steal_pointer (&md);
    }

  /* Missing, stale or lying metadata: ask the kernel, process by process. */
  g_array_unref (pids);
  pids = find_holder_pids (proc_dfd, id);
  if (kernel_pid > 0 && !pid_array_contains (pids, kernel_pid))
    g_array_append_val (pids, kernel_pid);

  /* A stagehand that has just taken the lock writes its metadata a moment
   * later; the scan above usually outlasts that moment, so look again
   * before settling for a holder without its operation. Seen with twenty
   * concurrent stages (tests/integration/46-lock-*.sh). */
  g_clear_pointer (&md, lock_holder_free);
  md = metadata_read (fd, &md_ticks);
  if (md != NULL && pid_array_contains (pids, md->pid)
      && metadata_verify (proc_dfd, md, md_ticks, id))
    {
      md->from_metadata = TRUE;
      *ret_pids = g_steal_pointer (&pids);
      return g_steal_pointer (&md);
    }

  /* Name the one that took it: among processes sharing the open file
   * description, the one whose parent does not share it. */
  pid_t named = pids->len > 0 ? g_array_index (pids, pid_t, 0) : 0;
  for (guint i = 0; i < pids->len; i++)
    {
      pid_t pid = g_array_index (pids, pid_t, i);
      pid_t parent;
      if (!proc_parent (pid, &parent) || !pid_array_contains (pids, parent))
        {
          named = pid;
          break;
        }
    }
  *ret_pids = g_steal_pointer (&pids);
  return holder_from_proc (named);
}

static char *
format_duration (gint64 usec)
{
  gint64 s = MAX (usec, 0) / G_USEC_PER_SEC;
  if (s < 120)
    return g_strdup_printf ("%" G_GINT64_FORMAT " s", s);
  if (s < 2 * 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT " min %" G_GINT64_FORMAT " s", s / 60, s % 60);
  return g_strdup_printf ("%" G_GINT64_FORMAT " h %" G_GINT64_FORMAT " min", s / 3600,
                          (s % 3600) / 60);
}

char *
lock_holder_describe (const LockHolder *holder)
{
  if (holder == NULL || holder->pid <= 0)
    return g_strdup ("an unidentified process");
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "PID %d", (int)holder->pid);
  if (holder->command != NULL && holder->command[0] != '\0')
    g_string_append_printf (s, " (%s)", holder->command);
  if (holder->operation != NULL && strcmp (holder->operation, "unknown") != 0)
    g_string_append_printf (s, ", operation %s", holder->operation);
  if (holder->start_time > 0)
    {
      g_autofree char *held = format_duration (g_get_real_time () - holder->start_time);
      g_string_append_printf (s, ", held for %s", held);
    }
  return g_string_free (s, FALSE);
}

/* Fails with LOCK_DEADLOCK if this process or one of its ancestors holds the
 * lock: such a holder is (directly or not) waiting for us, so it will not
 * release the lock before we give up. This is the nested-rpm deadlock of
 * background 000: a hook run by a holder calling the tool again. */
gboolean
lock_check_deadlock (const LockHolder *named, GArray *pids, GError **error)
{
  pid_t self = getpid ();
  g_autoptr (GArray) ancestors = ancestor_pids ();
  for (guint i = 0; i < pids->len; i++)
    {
      pid_t pid = g_array_index (pids, pid_t, i);
      gboolean is_self = pid == self;
      if (!is_self && !pid_array_contains (ancestors, pid))
        continue;
      g_autoptr (LockHolder) other = pid == named->pid ? NULL : holder_from_proc (pid);
      g_autofree char *who = lock_holder_describe (other ? other : named);
      if (is_self)
        return throw_error (error, STAGEHAND_ERROR_LOCK_DEADLOCK,
                            "sysroot lock is held by %s, this process itself (through another "
                            "open file): waiting would deadlock",
                            who);
      return throw_error (error, STAGEHAND_ERROR_LOCK_DEADLOCK,
                          "sysroot lock is held by %s, an ancestor of this process: waiting "
                          "would deadlock (is a hook calling stagehand?)",
                          who);
    }
  return TRUE;
}

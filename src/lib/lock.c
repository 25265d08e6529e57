/* The sysroot lock: an OFD write lock on <sysroot>/stagehand/lock.
 *
 * Why OFD locks (F_OFD_SETLK) and not flock() or classic POSIX locks: the
 * lock belongs to the open file description, so the kernel drops it when the
 * last fd to it closes, including on SIGKILL, and a second open in the same
 * process conflicts instead of silently sharing (POSIX locks are per process
 * and are lost when *any* fd to the file closes).
 *
 * Why we never block in F_OFD_SETLKW: a waiter must be able to give up after
 * its timeout and say who it waited for (certbot#4449 and the ApisCP
 * rpm-in-upcp outage, background 000/004). We poll with backoff instead.
 *
 * Why the metadata is verified: the file outlives its writer. A holder that
 * was SIGKILLed leaves its pid behind, the pid may be reused, and a holder
 * that is not stagehand writes nothing. The kernel is the only authority on
 * who holds the lock: /proc/<pid>/fdinfo/<fd> lists the locks held through
 * that fd ("lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:1234 0 EOF"), so the
 * metadata is trusted only when its pid, with the same process start time
 * and boot id, shows such a line; otherwise we scan /proc for the real holder.
 */
#include "config.h"

#include "lock.h"
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

struct SysrootLock
{
  int fd;
};

/* Backoff between attempts while the lock is busy. */
#define LOCK_POLL_MIN_USEC (10 * G_TIME_SPAN_MILLISECOND)
#define LOCK_POLL_MAX_USEC (500 * G_TIME_SPAN_MILLISECOND)
/* The wait callback runs first after this long, then at most this often. */
#define LOCK_REPORT_FIRST_USEC (1 * G_TIME_SPAN_SECOND)
#define LOCK_REPORT_EVERY_USEC (10 * G_TIME_SPAN_SECOND)

/* Bounds on what we read from files others may control. */
#define METADATA_MAX_BYTES 65536
#define PROC_FILE_MAX_BYTES 16384
#define COMMAND_MAX_BYTES 256
#define ANCESTOR_MAX_DEPTH 4096

#define METADATA_GROUP "lock"

/* How the kernel names the lock file in fdinfo lock lines. The device there
 * is the superblock's s_dev, which differs from fstat's st_dev on btrfs
 * subvolumes; the mount id of the fd (also in fdinfo) identifies the file
 * system in that case. */
typedef struct
{
  dev_t dev;
  ino_t ino;
  int mnt_id; /* -1 if unknown */
} LockFileId;

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
static char *
proc_read (const char *path, gsize max, gsize *ret_len)
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
  g_autofree char *raw = proc_read (path, PROC_FILE_MAX_BYTES, &len);
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
  g_autofree char *status = proc_read (path, PROC_FILE_MAX_BYTES, NULL);
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
  g_autofree char *stat = proc_read (path, PROC_FILE_MAX_BYTES, NULL);
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
  g_autofree char *raw = proc_read ("/proc/sys/kernel/random/boot_id", 128, NULL);
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
static int
fdinfo_mnt_id (const char *fdinfo)
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
                mnt_id = fdinfo_mnt_id (fdinfo);
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

/* What a holder says about itself. Gathered before the lock is taken: the
 * /proc reads are slow on a loaded machine, and every moment between taking
 * the lock and writing the metadata is a moment in which waiters can only
 * name us from /proc, without our operation. */
typedef struct
{
  pid_t pid;
  guint64 start_ticks; /* 0 if unknown */
  char *command;
  char *boot_id; /* NULL if unknown */
} MetadataSelf;

static void
metadata_self_init (MetadataSelf *self)
{
  self->pid = getpid ();
  if (!proc_start_ticks (self->pid, &self->start_ticks))
    self->start_ticks = 0;
  self->command = proc_command (self->pid);
  self->boot_id = read_boot_id ();
}

static void
metadata_self_clear (MetadataSelf *self)
{
  g_clear_pointer (&self->command, g_free);
  g_clear_pointer (&self->boot_id, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MetadataSelf, metadata_self_clear)

static char *
metadata_format (const MetadataSelf *self, const char *operation)
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
static LockHolder *
identify_holder (int fd, const LockFileId *id, pid_t kernel_pid, GArray **ret_pids)
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
static gboolean
check_deadlock (const LockHolder *named, GArray *pids, GError **error)
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

/* ------------------------------------------------------- the lock file */

static gboolean
check_state_dir (int state_dfd, const char *dir_path, GError **error)
{
  struct stat st;
  if (fstat (state_dfd, &st) < 0)
    return throw_errno (error, "checking state directory %s", dir_path);
  if (!S_ISDIR (st.st_mode))
    return throw_error (error, STAGEHAND_ERROR_FAILED, "state directory %s is not a directory",
                        dir_path);
  uid_t euid = geteuid ();
  if (st.st_uid != euid)
    return throw_error (error, STAGEHAND_ERROR_FAILED,
                        "refusing state directory %s: it is owned by uid %u, not by uid %u that "
                        "runs stagehand, so its owner could replace the lock file; "
                        "fix it with: chown %u %s",
                        dir_path, (guint)st.st_uid, (guint)euid, (guint)euid, dir_path);
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return throw_error (error, STAGEHAND_ERROR_FAILED,
                        "refusing state directory %s: it is writable by group or others (mode "
                        "%04o), so anyone could replace the lock file; fix it with: chmod go-w %s",
                        dir_path, (guint)(st.st_mode & 07777), dir_path);
  return TRUE;
}

static gboolean
throw_not_regular (const char *lock_path, mode_t mode, GError **error)
{
  const char *what = S_ISDIR (mode)    ? "a directory"
                     : S_ISFIFO (mode) ? "a FIFO"
                     : S_ISSOCK (mode) ? "a socket"
                     : S_ISCHR (mode)  ? "a character device"
                     : S_ISBLK (mode)  ? "a block device"
                                       : "not a regular file";
  return throw_error (error, STAGEHAND_ERROR_FAILED,
                      "refusing lock file %s: it is %s, not a regular file; remove it and retry",
                      lock_path, what);
}

static gboolean
throw_symlink (int state_dfd, const char *lock_path, GError **error)
{
  char target[256];
  ssize_t n = readlinkat (state_dfd, SYSROOT_LOCK_FILE, target, sizeof target - 1);
  target[MAX (n, 0)] = '\0';
  return throw_error (error, STAGEHAND_ERROR_FAILED,
                      "refusing lock file %s: it is a symbolic link%s%s%s, which would move the "
                      "lock to another file; remove it and retry",
                      lock_path, n > 0 ? " (to " : "", n > 0 ? target : "", n > 0 ? ")" : "");
}

/* Opens the lock file, refusing anything but a regular file of ours. With
 * @create, creates it 0600 and opens it read-write (a write lock needs a
 * writable fd); without, returns TRUE with *ret_fd = -1 when it is missing.
 *
 * Why the fstatat() before the open: opening a device node can have side
 * effects, so a planted one is refused before it is opened. The open itself
 * uses O_NOFOLLOW and O_NONBLOCK (a FIFO planted after the check must not
 * hang us), and the fstat() after it is what actually decides. */
static gboolean
open_lock_file (int state_dfd, gboolean create, int *ret_fd, LockFileId *ret_id, GError **error)
{
  g_autofree char *dir_path = fs_fd_path (state_dfd);
  g_autofree char *lock_path = g_build_filename (dir_path, SYSROOT_LOCK_FILE, NULL);

  struct stat st;
  gboolean exists;
  if (!fs_stat_optional (state_dfd, SYSROOT_LOCK_FILE, &st, &exists, error))
    return prefix_error (error, "sysroot lock: ");
  if (exists && S_ISLNK (st.st_mode))
    return throw_symlink (state_dfd, lock_path, error);
  if (exists && !S_ISREG (st.st_mode))
    return throw_not_regular (lock_path, st.st_mode, error);
  if (!exists && !create)
    {
      *ret_fd = -1;
      return TRUE;
    }

  int flags = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  flags |= create ? (O_RDWR | O_CREAT) : O_RDONLY;
  autofd fd = openat (state_dfd, SYSROOT_LOCK_FILE, flags, 0600);
  if (fd < 0)
    {
      if (errno == ELOOP)
        return throw_symlink (state_dfd, lock_path, error);
      if (errno == ENOENT && !create)
        {
          *ret_fd = -1;
          return TRUE;
        }
      return throw_errno (error, "opening sysroot lock %s", lock_path);
    }
  if (fstat (fd, &st) < 0)
    return throw_errno (error, "checking sysroot lock %s", lock_path);
  if (!S_ISREG (st.st_mode))
    return throw_not_regular (lock_path, st.st_mode, error);

  if (create)
    {
      uid_t euid = geteuid ();
      if (st.st_uid != euid)
        return throw_error (error, STAGEHAND_ERROR_FAILED,
                            "refusing lock file %s: it is owned by uid %u, not by uid %u that "
                            "runs stagehand; remove it and retry",
                            lock_path, (guint)st.st_uid, (guint)euid);
      /* Anyone who can open the file can take a read lock and block us, so
       * nobody else may open it (the certbot lesson: a lock others can
       * take is a denial of service). */
      if ((st.st_mode & 0077) != 0 && fchmod (fd, 0600) < 0)
        return throw_errno (error, "restricting sysroot lock %s to mode 0600", lock_path);
    }

  ret_id->dev = st.st_dev;
  ret_id->ino = st.st_ino;
  g_autofree char *self_fdinfo_path = g_strdup_printf ("/proc/self/fdinfo/%d", fd);
  g_autofree char *self_fdinfo = proc_read (self_fdinfo_path, PROC_FILE_MAX_BYTES, NULL);
  ret_id->mnt_id = self_fdinfo ? fdinfo_mnt_id (self_fdinfo) : -1;
  *ret_fd = fd_steal (&fd);
  return TRUE;
}

/* Writes our metadata into the locked file. Best effort, by design: the
 * metadata only helps waiters name us, and they verify it against /proc and
 * fall back to scanning /proc without it; failing to take the lock because
 * the state file system is full would block the very cleanup that frees
 * space. */
static void
metadata_write (int fd, const MetadataSelf *self, const char *operation)
{
  g_autofree char *data = metadata_format (self, operation);
  gsize len = strlen (data);
  if (ftruncate (fd, 0) < 0)
    return;
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = pwrite (fd, data + off, len - off, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      off += n;
    }
}

static int
try_lock (int fd, short type, int cmd, struct flock *ret_fl)
{
  struct flock fl = {
    .l_type = type,
    .l_whence = SEEK_SET,
    .l_start = 0,
    .l_len = 0, /* the whole file, however long it grows */
    .l_pid = 0, /* must be 0 for OFD locks */
  };
  int r = fcntl (fd, cmd, &fl);
  if (ret_fl)
    *ret_fl = fl;
  return r;
}

static gboolean
lock_busy_errno (int errnum)
{
  return errnum == EAGAIN || errnum == EACCES;
}

gboolean
sysroot_lock_acquire (int state_dfd, const char *operation, guint timeout_sec,
                      LockWaitFunc wait_func, gpointer wait_data, SysrootLock **ret_lock,
                      GError **error)
{
  g_autofree char *dir_path = fs_fd_path (state_dfd);
  if (!check_state_dir (state_dfd, dir_path, error))
    return FALSE;

  autofd fd = -1;
  LockFileId id;
  if (!open_lock_file (state_dfd, TRUE, &fd, &id, error))
    return FALSE;

  g_auto (MetadataSelf) self = { 0 };
  metadata_self_init (&self);

  const gint64 start = g_get_monotonic_time ();
  const gint64 deadline = start + (gint64)timeout_sec * G_USEC_PER_SEC;
  gint64 next_report = start + LOCK_REPORT_FIRST_USEC;
  gint64 delay = LOCK_POLL_MIN_USEC;
  gboolean identified_once = FALSE;

  while (try_lock (fd, F_WRLCK, F_OFD_SETLK, NULL) < 0)
    {
      if (!lock_busy_errno (errno))
        return throw_errno (error, "taking sysroot lock %s/%s", dir_path, SYSROOT_LOCK_FILE);

      gint64 now = g_get_monotonic_time ();
      gboolean report = now >= next_report;
      gboolean give_up = now >= deadline;
      /* Identify the holder at the first refusal (a deadlock must fail at
       * once), then only at the bounded reporting rate: a full /proc scan
       * per poll would cost more than the wait. */
      if (!identified_once || report || give_up)
        {
          g_autoptr (GArray) pids = NULL;
          g_autoptr (LockHolder) holder = identify_holder (fd, &id, 0, &pids);
          identified_once = TRUE;
          if (pids->len > 0 && !check_deadlock (holder, pids, error))
            return FALSE;
          if (give_up)
            {
              g_autofree char *who = lock_holder_describe (holder);
              /* Where the timeout is set (a flag, a stagehand.conf key)
               * depends on the verb: the CLI says it. */
              return throw_error (error, STAGEHAND_ERROR_LOCK_TIMEOUT,
                                  "sysroot lock is held by %s; gave up after %u s", who,
                                  timeout_sec);
            }
          if (report)
            {
              if (wait_func != NULL)
                wait_func (holder, now - start, wait_data);
              next_report = now + LOCK_REPORT_EVERY_USEC;
            }
        }

      now = g_get_monotonic_time ();
      gint64 sleep_usec = MIN (delay, MAX (deadline - now, 0));
      if (sleep_usec > 0)
        g_usleep (sleep_usec);
      delay = MIN (delay * 2, LOCK_POLL_MAX_USEC);
    }

  metadata_write (fd, &self, operation);

  SysrootLock *lock = g_new0 (SysrootLock, 1);
  lock->fd = fd_steal (&fd);
  *ret_lock = lock;
  return TRUE;
}

void
sysroot_lock_release (SysrootLock *lock)
{
  if (lock == NULL)
    return;
  /* Clear the metadata while still holding the lock, so no waiter reads a
   * half-cleared file as ours; then unlock explicitly, which also releases
   * it for a child that inherited the fd across a fork. Both are best
   * effort: closing the fd releases the lock regardless, and waiters never
   * believe metadata the kernel does not confirm. */
  if (ftruncate (lock->fd, 0) < 0)
    {
      /* see above: best effort */
    }
  (void)try_lock (lock->fd, F_UNLCK, F_OFD_SETLK, NULL);
  (void)close (lock->fd);
  g_free (lock);
}

gboolean
sysroot_lock_query (int state_dfd, LockHolder **ret_holder, GError **error)
{
  autofd fd = -1;
  LockFileId id;
  if (!open_lock_file (state_dfd, FALSE, &fd, &id, error))
    return FALSE;
  if (fd < 0)
    {
      *ret_holder = NULL;
      return TRUE;
    }

  struct flock fl;
  if (try_lock (fd, F_WRLCK, F_OFD_GETLK, &fl) < 0)
    return throw_errno (error, "querying sysroot lock");
  if (fl.l_type == F_UNLCK)
    {
      *ret_holder = NULL;
      return TRUE;
    }

  g_autoptr (GArray) pids = NULL;
  *ret_holder = identify_holder (fd, &id, fl.l_pid > 0 ? fl.l_pid : 0, &pids);
  return TRUE;
}

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

#include "lock-private.h"
#include "errors.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
  g_autofree char *self_fdinfo = lock_proc_read (self_fdinfo_path, PROC_FILE_MAX_BYTES, NULL);
  ret_id->mnt_id = self_fdinfo ? lock_fdinfo_mnt_id (self_fdinfo) : -1;
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
  g_autofree char *data = lock_metadata_format (self, operation);
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
  lock_metadata_self_init (&self);

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
          g_autoptr (LockHolder) holder = lock_identify_holder (fd, &id, 0, &pids);
          identified_once = TRUE;
          if (pids->len > 0 && !lock_check_deadlock (holder, pids, error))
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

/* With @ret_unknown NULL, a lock file we may not open is an error. */
static gboolean
lock_query (int state_dfd, LockHolder **ret_holder, char **ret_unknown, GError **error)
{
  autofd fd = -1;
  LockFileId id;
  g_autoptr (GError) local_error = NULL;
  if (ret_unknown != NULL)
    *ret_unknown = NULL;
  if (!open_lock_file (state_dfd, FALSE, &fd, &id, &local_error))
    {
      /* The lock file is root's, 0600 (anyone who can open it can take a
       * lock and block every update): another user cannot ask the kernel
       * about it. That makes the lock unknown to them, not the state
       * unreadable. */
      if (ret_unknown != NULL
          && (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_ACCES)
              || g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_PERM)))
        {
          *ret_holder = NULL;
          *ret_unknown = g_strdup (local_error->message);
          return TRUE;
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
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
  *ret_holder = lock_identify_holder (fd, &id, fl.l_pid > 0 ? fl.l_pid : 0, &pids);
  return TRUE;
}

gboolean
sysroot_lock_query (int state_dfd, LockHolder **ret_holder, GError **error)
{
  return lock_query (state_dfd, ret_holder, NULL, error);
}

gboolean
sysroot_lock_query_as_reader (int state_dfd, LockHolder **ret_holder, char **ret_unknown,
                              GError **error)
{
  return lock_query (state_dfd, ret_holder, ret_unknown, error);
}

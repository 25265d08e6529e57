/* The sysroot lock: <sysroot>/stagehand/lock, an OFD write lock.
 *
 * Lessons behind it (see docs/design.md): a lock is never waited on silently
 * or forever; a process never waits for a lock its own ancestor holds (the
 * rpm-in-upcp deadlock); the lock file lives in a directory only its owner
 * can write, mode 0600, opened with O_NOFOLLOW (the world-writable lock file
 * anyone could take). The kernel drops OFD locks when the last fd to the open
 * file description closes, so a dead holder never blocks anyone.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define SYSROOT_LOCK_FILE "lock"

typedef struct
{
  pid_t pid;
  char *command;          /* command line of @pid, spaces between args; never NULL */
  char *operation;        /* e.g. "stage"; "unknown" when not a stagehand holder */
  gint64 start_time;      /* realtime µs when it took the lock, 0 if unknown */
  char *boot_id;          /* NULL if unknown */
  gboolean from_metadata; /* TRUE if the lock file's metadata named it (and was verified) */
} LockHolder;

void lock_holder_free (LockHolder *holder);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LockHolder, lock_holder_free)

/* One line for messages: "PID 123 (stagehand stage /img.tar), operation stage, held for 12 s". */
char *lock_holder_describe (const LockHolder *holder);

/* Called while waiting, at a bounded rate (not once per poll), so the caller
 * can say who it is waiting for. */
typedef void (*LockWaitFunc) (const LockHolder *holder, guint64 waited_usec, gpointer user_data);

typedef struct SysrootLock SysrootLock;

/* Takes the write lock on SYSROOT_LOCK_FILE below @state_dfd (the
 * <sysroot>/stagehand directory), creating it 0600 if needed, then writes
 * this process's metadata (pid, command, @operation, start time, boot id)
 * into it. Polls with backoff for at most @timeout_sec seconds (0 = try
 * once). Fails with STAGEHAND_ERROR_LOCK_TIMEOUT naming the holder on
 * timeout (the caller says where that timeout is set), and with
 * STAGEHAND_ERROR_LOCK_DEADLOCK at once when the holder is an ancestor of
 * this process. Refuses a lock path that is a symlink or not a regular
 * file, and a state directory that others can write. */
gboolean sysroot_lock_acquire (int state_dfd, const char *operation, guint timeout_sec,
                               LockWaitFunc wait_func, gpointer wait_data, SysrootLock **ret_lock,
                               GError **error);

/* Releases the lock (clears the metadata, closes the fd). Accepts NULL. */
void sysroot_lock_release (SysrootLock *lock);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SysrootLock, sysroot_lock_release)

/* Reports, without taking it, whether the lock is held and by whom (for
 * `status`). *ret_holder is NULL when not held. Works when the holder is
 * not stagehand (found from /proc/<pid>/fdinfo lock lines) and never reports
 * stale metadata of a dead holder as live. A missing lock file is "not held". */
gboolean sysroot_lock_query (int state_dfd, LockHolder **ret_holder, GError **error);

/* sysroot_lock_query() for a reader that may not be the lock's owner
 * (`status` run by any user): when the lock file exists but this process
 * may not open it (it is 0600), *ret_unknown says why and *ret_holder is
 * NULL: the lock's state is unknown. Otherwise *ret_unknown is NULL. */
gboolean sysroot_lock_query_as_reader (int state_dfd, LockHolder **ret_holder, char **ret_unknown,
                                       GError **error);

G_END_DECLS

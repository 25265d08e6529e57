/* The lock file and its state directory: what sysroot_lock_acquire() and
 * sysroot_lock_query() refuse (a symbolic link or a non-regular file at the
 * lock path, a state directory others could write or do not own) and what a
 * query makes of a lock file that is absent or names a dead process. */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "lock-fixtures.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A pid that no process has now: a child we spawned and reaped. */
static pid_t
dead_pid (void)
{
  g_autoptr (GError) error = NULL;
  GPid pid;
  char *argv[] = { (char *)"true", NULL };
  g_assert_true (g_spawn_async (NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                NULL, NULL, &pid, &error));
  g_assert_no_error (error);
  int status;
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return pid;
}

static void
test_symlink_at_lock_path_is_refused (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *target = g_build_filename (fx->dir, "precious", NULL);
  g_assert_true (g_file_set_contents (target, "precious\n", -1, &error));
  g_assert_cmpint (chmod (target, 0644), ==, 0);
  g_assert_cmpint (symlinkat ("precious", fx->dfd, SYSROOT_LOCK_FILE), ==, 0);

  g_autoptr (SysrootLock) lock = NULL;
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  assert_contains (error->message, "symbolic link");
  assert_contains (error->message, "remove it");
  g_clear_error (&error);

  g_autoptr (LockHolder) holder = NULL;
  g_assert_false (sysroot_lock_query (fx->dfd, &holder, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  g_clear_error (&error);

  /* The target is untouched: content, mode, and no lock taken on it. */
  g_autofree char *contents = NULL;
  g_assert_true (g_file_get_contents (target, &contents, NULL, &error));
  g_assert_cmpstr (contents, ==, "precious\n");
  struct stat st;
  g_assert_cmpint (stat (target, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0644);

  /* A dangling link is not followed to create its target. */
  g_assert_cmpint (unlinkat (fx->dfd, SYSROOT_LOCK_FILE, 0), ==, 0);
  g_assert_cmpint (symlinkat ("created-through-link", fx->dfd, SYSROOT_LOCK_FILE), ==, 0);
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  g_assert_cmpint (faccessat (fx->dfd, "created-through-link", F_OK, AT_SYMLINK_NOFOLLOW), <, 0);
}

static void
test_non_regular_lock_path_is_refused (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_cmpint (mkfifoat (fx->dfd, SYSROOT_LOCK_FILE, 0600), ==, 0);
  gint64 start = g_get_monotonic_time ();
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  assert_contains (error->message, "a FIFO, not a regular file");
  g_assert_cmpfloat (seconds_since (start), <, 1.0);
  g_clear_error (&error);

  g_assert_cmpint (unlinkat (fx->dfd, SYSROOT_LOCK_FILE, 0), ==, 0);
  g_assert_cmpint (mkdirat (fx->dfd, SYSROOT_LOCK_FILE, 0700), ==, 0);
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  assert_contains (error->message, "a directory, not a regular file");
}

static void
assert_state_dir_refused (Fixture *fx, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_FAILED);
  assert_contains (error->message, fx->dir);
  assert_contains (error->message, expected);
  g_assert_cmpint (faccessat (fx->dfd, SYSROOT_LOCK_FILE, F_OK, AT_SYMLINK_NOFOLLOW), <, 0);
}

static void
test_writable_state_dir_is_refused (Fixture *fx, gconstpointer data)
{
  g_assert_cmpint (fchmod (fx->dfd, 0770), ==, 0);
  assert_state_dir_refused (
      fx, "writable by group or others (mode 0770), so anyone could replace the lock file; fix it "
          "with: chmod go-w");
  g_assert_cmpint (fchmod (fx->dfd, 01777), ==, 0);
  assert_state_dir_refused (fx, "writable by group or others (mode 1777)");
  g_assert_cmpint (fchmod (fx->dfd, 0700), ==, 0);
}

static void
test_state_dir_of_another_user_is_refused (Fixture *fx, gconstpointer data)
{
  if (geteuid () != 0)
    {
      g_test_skip ("needs root to give the directory away");
      return;
    }
  g_assert_cmpint (fchown (fx->dfd, 65534, -1), ==, 0);
  assert_state_dir_refused (fx, "owned by uid 65534, not by uid 0");
  g_assert_cmpint (fchown (fx->dfd, 0, -1), ==, 0);
}

static void
test_existing_lock_file_is_restricted_to_owner (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  autofd fd = openat (fx->dfd, SYSROOT_LOCK_FILE, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (fchmod (fd, 0644), ==, 0);

  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
  struct stat st;
  g_assert_cmpint (fstat (fd, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
}

static void
test_query_absent_lock_file_is_not_held (Fixture *fx, gconstpointer data)
{
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_null (holder);
  /* Asking does not create it. */
  g_assert_cmpint (faccessat (fx->dfd, SYSROOT_LOCK_FILE, F_OK, AT_SYMLINK_NOFOLLOW), <, 0);
}

static void
test_query_ignores_stale_metadata (Fixture *fx, gconstpointer data)
{
  pid_t dead = dead_pid ();
  plant_metadata (fx, dead, "stagehand stage /img.tar", "stage");

  g_autoptr (GError) error = NULL;
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_null (holder);

  /* Nor does it stop anyone. */
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
}

#define ADD(name, func) g_test_add (name, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  ADD ("/lock/symlink-at-lock-path-is-refused", test_symlink_at_lock_path_is_refused);
  ADD ("/lock/non-regular-lock-path-is-refused", test_non_regular_lock_path_is_refused);
  ADD ("/lock/writable-state-dir-is-refused", test_writable_state_dir_is_refused);
  ADD ("/lock/state-dir-of-another-user-is-refused", test_state_dir_of_another_user_is_refused);
  ADD ("/lock/existing-lock-file-is-restricted-to-owner",
       test_existing_lock_file_is_restricted_to_owner);
  ADD ("/lock/query-absent-lock-file-is-not-held", test_query_absent_lock_file_is_not_held);
  ADD ("/lock/query-ignores-stale-metadata", test_query_ignores_stale_metadata);

  return g_test_run ();
}

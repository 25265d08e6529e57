/* The sysroot lock against real processes: holders are this test binary
 * re-executed as a helper (`test-lock --lock-helper hold DIR OP`), a python3
 * process holding an OFD lock of its own, or this process itself. Helpers
 * say "locked <pid>" on stdout once they hold the lock and keep it until
 * their stdin closes, so no test sleeps to wait for a holder. The lock file
 * and state directory refusals are in test-lock-file.c. */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "lock-fixtures.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit codes of `--lock-helper acquire`: 0, or this plus the StagehandError code. */
#define HELPER_EXIT_ERROR_BASE 20
#define HELPER_EXIT_OTHER 1

static char *self_exe;

/* ---------------------------------------------------------------- helper */

static int
helper_main (int argc, char **argv)
{
  if (argc < 5)
    {
      fprintf (stderr, "usage: %s --lock-helper hold|hold-and-fork|acquire DIR ARG\n", argv[0]);
      return 2;
    }
  const char *mode = argv[2];
  g_autoptr (GError) error = NULL;
  autofd dfd = -1;
  if (!fs_opendir_at (AT_FDCWD, argv[3], &dfd, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return HELPER_EXIT_OTHER;
    }

  if (strcmp (mode, "acquire") == 0)
    {
      g_autoptr (SysrootLock) lock = NULL;
      guint timeout = (guint)g_ascii_strtoull (argv[4], NULL, 10);
      if (sysroot_lock_acquire (dfd, "nested", timeout, NULL, NULL, &lock, &error))
        {
          printf ("acquired\n");
          return 0;
        }
      printf ("%s\n", error->message);
      if (error->domain == STAGEHAND_ERROR)
        return HELPER_EXIT_ERROR_BASE + error->code;
      return HELPER_EXIT_OTHER;
    }

  /* hold: keep the lock until stdin closes. hold-and-fork: take it, fork a
   * child that keeps the inherited fd (and so the lock) and exit without
   * releasing, leaving metadata that names a dead process. */
  g_autoptr (SysrootLock) lock = NULL;
  if (!sysroot_lock_acquire (dfd, argv[4], 10, NULL, NULL, &lock, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return HELPER_EXIT_OTHER;
    }
  if (strcmp (mode, "hold-and-fork") == 0)
    {
      pid_t child = fork ();
      if (child < 0)
        return HELPER_EXIT_OTHER;
      if (child > 0)
        _exit (0);
    }
  printf ("locked %d\n", (int)getpid ());
  fflush (stdout);
  char buf[64];
  while (read (STDIN_FILENO, buf, sizeof buf) > 0 || errno == EINTR)
    ;
  if (strcmp (mode, "hold-and-fork") == 0)
    _exit (0);
  return 0;
}

/* ---------------------------------------------------------------- holders */

typedef struct
{
  GPid pid;       /* the process we spawned */
  pid_t lock_pid; /* the process that reported holding the lock */
  int stdin_fd;
  int stdout_fd;
} Holder;

/* Reads one line from @fd without buffering past it; NULL on EOF. */
static char *
read_line (int fd)
{
  GString *line = g_string_new (NULL);
  char c;
  for (;;)
    {
      ssize_t n = read (fd, &c, 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return g_string_free (line, line->len == 0);
      if (c == '\n')
        return g_string_free (line, FALSE);
      g_string_append_c (line, c);
    }
}

/* Spawns @argv and waits until it says "locked <pid>". Returns FALSE (and
 * reaps it) if it exits first, with its exit status in *ret_status. */
static gboolean
holder_start (char **argv, Holder *ret, int *ret_status)
{
  g_autoptr (GError) error = NULL;
  Holder h = { 0 };
  g_assert_true (g_spawn_async_with_pipes (NULL, argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, NULL,
                                           NULL, &h.pid, &h.stdin_fd, &h.stdout_fd, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *line = read_line (h.stdout_fd);
  if (line == NULL || !g_str_has_prefix (line, "locked "))
    {
      int status = 0;
      (void)close (h.stdin_fd); /* test cleanup */
      (void)close (h.stdout_fd);
      g_assert_cmpint (waitpid (h.pid, &status, 0), ==, h.pid);
      if (ret_status)
        *ret_status = status;
      return FALSE;
    }
  h.lock_pid = (pid_t)g_ascii_strtoll (line + strlen ("locked "), NULL, 10);
  g_assert_cmpint (h.lock_pid, >, 0);
  *ret = h;
  return TRUE;
}

static void
holder_start_helper (const char *mode, const char *dir, const char *operation, Holder *ret)
{
  char *argv[]
      = { self_exe, (char *)"--lock-helper", (char *)mode, (char *)dir, (char *)operation, NULL };
  g_assert_true (holder_start (argv, ret, NULL));
}

/* Closes the holder's stdin (it releases and exits) and reaps what we spawned. */
static void
holder_stop (Holder *h)
{
  if (h->pid <= 0)
    return;
  (void)close (h->stdin_fd); /* test cleanup: EOF is the release signal */
  (void)close (h->stdout_fd);
  int status;
  g_assert_cmpint (waitpid (h->pid, &status, 0), ==, h->pid);
  h->pid = 0;
}

/* ---------------------------------------------------------------- lock file */

static char *
read_lock_file (Fixture *fx)
{
  g_autoptr (GError) error = NULL;
  char *contents = NULL;
  g_assert_true (g_file_get_contents (fx->lock_path, &contents, NULL, &error));
  g_assert_no_error (error);
  return contents;
}

/* ---------------------------------------------------------------- tests */

static void
test_acquire_writes_metadata_release_clears_it (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  SysrootLock *lock = NULL;
  gint64 before = g_get_real_time ();
  g_assert_true (sysroot_lock_acquire (fx->dfd, "test-op", 0, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
  g_assert_nonnull (lock);

  struct stat st;
  g_assert_cmpint (fstatat (fx->dfd, SYSROOT_LOCK_FILE, &st, AT_SYMLINK_NOFOLLOW), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);

  g_autofree char *text = read_lock_file (fx);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_assert_true (g_key_file_load_from_data (kf, text, -1, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_key_file_get_int64 (kf, "lock", "pid", NULL), ==, getpid ());
  g_autofree char *operation = g_key_file_get_string (kf, "lock", "operation", NULL);
  g_assert_cmpstr (operation, ==, "test-op");
  g_autofree char *command = g_key_file_get_string (kf, "lock", "command", NULL);
  assert_contains (command, "test-lock");
  g_autofree char *boot = boot_id ();
  g_autofree char *file_boot = g_key_file_get_string (kf, "lock", "boot_id", NULL);
  g_assert_cmpstr (file_boot, ==, boot);
  gint64 started = g_key_file_get_int64 (kf, "lock", "start_time_usec", NULL);
  g_assert_cmpint (started, >=, before);
  g_assert_cmpint (started, <=, g_get_real_time ());

  /* status from this same process sees it held, by us. */
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_nonnull (holder);
  g_assert_cmpint (holder->pid, ==, getpid ());
  g_assert_true (holder->from_metadata);
  g_assert_cmpstr (holder->operation, ==, "test-op");

  sysroot_lock_release (lock);
  g_assert_cmpint (fstatat (fx->dfd, SYSROOT_LOCK_FILE, &st, AT_SYMLINK_NOFOLLOW), ==, 0);
  g_assert_cmpint (st.st_size, ==, 0);

  g_autoptr (LockHolder) after = query_lock (fx);
  g_assert_null (after);

  /* And it can be taken again at once. */
  g_autoptr (SysrootLock) again = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "again", 0, NULL, NULL, &again, &error));
  g_assert_no_error (error);
}

typedef struct
{
  guint calls;
  guint64 first_waited;
  pid_t first_pid;
  pid_t kill_pid; /* SIGKILLed at the first call if > 0 */
  gint64 killed_at;
} WaitLog;

static void
on_wait (const LockHolder *holder, guint64 waited_usec, gpointer user_data)
{
  WaitLog *log = user_data;
  if (log->calls++ == 0)
    {
      log->first_waited = waited_usec;
      log->first_pid = holder ? holder->pid : 0;
      if (log->kill_pid > 0)
        {
          g_assert_cmpint (kill (log->kill_pid, SIGKILL), ==, 0);
          log->killed_at = g_get_monotonic_time ();
        }
    }
}

static void
test_contended_times_out_naming_holder (Fixture *fx, gconstpointer data)
{
  Holder h;
  holder_start_helper ("hold", fx->dir, "stage-test", &h);

  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  WaitLog log = { 0 };
  gint64 start = g_get_monotonic_time ();
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 2, on_wait, &log, &lock, &error));
  double elapsed = seconds_since (start);
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_TIMEOUT);
  g_assert_null (lock);
  g_assert_cmpfloat (elapsed, >=, 1.9);
  g_assert_cmpfloat (elapsed, <, 3.5);

  g_autofree char *pid_text = g_strdup_printf ("PID %d (", (int)h.lock_pid);
  assert_contains (error->message, pid_text);
  assert_contains (error->message, "test-lock --lock-helper hold");
  assert_contains (error->message, "operation stage-test");
  assert_contains (error->message, "held for ");
  assert_contains (error->message, "gave up after 2 s");

  /* The wait callback ran once, after about a second, not once per poll. */
  g_assert_cmpuint (log.calls, ==, 1);
  g_assert_cmpuint (log.first_waited, >=, 900 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (log.first_pid, ==, h.lock_pid);

  /* A zero timeout tries once. */
  g_clear_error (&error);
  start = g_get_monotonic_time ();
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, on_wait, &log, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_TIMEOUT);
  g_assert_cmpfloat (seconds_since (start), <, 0.5);

  holder_stop (&h);
  g_clear_error (&error);
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
}

static void
test_query_names_live_holder (Fixture *fx, gconstpointer data)
{
  Holder h;
  holder_start_helper ("hold", fx->dir, "deploy", &h);

  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_nonnull (holder);
  g_assert_cmpint (holder->pid, ==, h.lock_pid);
  g_assert_true (holder->from_metadata);
  g_assert_cmpstr (holder->operation, ==, "deploy");
  assert_contains (holder->command, "--lock-helper hold");
  g_assert_cmpint (holder->start_time, >, 0);

  g_autofree char *line = lock_holder_describe (holder);
  g_autofree char *prefix = g_strdup_printf ("PID %d (", (int)h.lock_pid);
  g_assert_true (g_str_has_prefix (line, prefix));
  assert_contains (line, "), operation deploy, held for 0 s");

  holder_stop (&h);
  g_autoptr (LockHolder) after = query_lock (fx);
  g_assert_null (after);
}

static const char python_holder[]
    = "import fcntl, os, struct, sys\n"
      "if not hasattr(fcntl, 'F_OFD_SETLK'): sys.exit(77)\n"
      "fd = os.open(sys.argv[1], os.O_RDWR)\n"
      "fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 0, 0, 0))\n"
      "sys.stdout.write('locked %d\\n' % os.getpid()); sys.stdout.flush()\n"
      "sys.stdin.read()\n";

/* A holder that is not stagehand writes no metadata; what the file says
 * (here: a lie naming pid 1, which is alive and holds nothing) must not be
 * believed, and the real holder is found through /proc. */
static void
test_foreign_holder_is_named (Fixture *fx, gconstpointer data)
{
  g_autofree char *python = g_find_program_in_path ("python3");
  if (python == NULL)
    {
      g_test_skip ("python3 not installed");
      return;
    }
  plant_metadata (fx, 1, "stagehand bogus", "bogus");

  Holder h;
  int status = 0;
  char *argv[] = { python, (char *)"-c", (char *)python_holder, fx->lock_path, NULL };
  if (!holder_start (argv, &h, &status))
    {
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 77);
      g_test_skip ("python3 has no fcntl.F_OFD_SETLK");
      return;
    }

  g_autoptr (GError) error = NULL;
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_nonnull (holder);
  g_assert_cmpint (holder->pid, ==, h.lock_pid);
  g_assert_false (holder->from_metadata);
  assert_contains (holder->command, "python");
  g_assert_cmpstr (holder->operation, ==, "unknown");

  g_autoptr (SysrootLock) lock = NULL;
  g_assert_false (sysroot_lock_acquire (fx->dfd, "stage", 0, NULL, NULL, &lock, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_TIMEOUT);
  g_autofree char *pid_text = g_strdup_printf ("PID %d (", (int)h.lock_pid);
  assert_contains (error->message, pid_text);
  assert_contains (error->message, "python");
  g_assert_null (strstr (error->message, "bogus"));
  g_assert_null (strstr (error->message, "PID 1 "));

  holder_stop (&h);
}

/* The holder forked and died; its child inherited the fd and with it the
 * lock. The metadata names the dead writer; the live child is named. */
static void
test_inherited_fd_holder_is_named (Fixture *fx, gconstpointer data)
{
  Holder h;
  holder_start_helper ("hold-and-fork", fx->dir, "stage", &h);
  g_assert_cmpint (h.lock_pid, !=, h.pid);
  int status;
  g_assert_cmpint (waitpid (h.pid, &status, 0), ==, h.pid); /* the writer is gone */
  g_autofree char *text = read_lock_file (fx);
  g_autofree char *writer = g_strdup_printf ("pid=%d\n", (int)h.pid);
  assert_contains (text, writer);

  g_autoptr (GError) error = NULL;
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_nonnull (holder);
  g_assert_cmpint (holder->pid, ==, h.lock_pid);
  g_assert_false (holder->from_metadata);
  assert_contains (holder->command, "--lock-helper hold-and-fork");

  /* The child is not ours to reap: end it and wait until the lock is free. */
  g_assert_cmpint (kill (h.lock_pid, SIGKILL), ==, 0);
  (void)close (h.stdin_fd); /* test cleanup */
  (void)close (h.stdout_fd);
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 5, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
}

static void
test_sigkilled_holder_releases_at_once (Fixture *fx, gconstpointer data)
{
  Holder h;
  holder_start_helper ("hold", fx->dir, "stage", &h);

  /* A waiter already polling gets the lock soon after the kill. */
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  WaitLog log = { .kill_pid = h.pid };
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 30, on_wait, &log, &lock, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (log.calls, ==, 1);
  g_assert_cmpfloat (seconds_since (log.killed_at), <, 0.8);
  int status;
  g_assert_cmpint (waitpid (h.pid, &status, 0), ==, h.pid);
  g_assert_true (WIFSIGNALED (status));
  g_clear_pointer (&lock, sysroot_lock_release);

  /* A new waiter after a kill does not wait at all, and is not fooled by
   * the metadata the dead holder left. */
  holder_start_helper ("hold", fx->dir, "stage", &h);
  g_assert_cmpint (kill (h.pid, SIGKILL), ==, 0);
  g_assert_cmpint (waitpid (h.pid, &status, 0), ==, h.pid);
  g_autofree char *text = read_lock_file (fx);
  g_autofree char *writer = g_strdup_printf ("pid=%d\n", (int)h.pid);
  assert_contains (text, writer);
  g_autoptr (LockHolder) holder = query_lock (fx);
  g_assert_null (holder);
  gint64 start = g_get_monotonic_time ();
  g_assert_true (sysroot_lock_acquire (fx->dfd, "stage", 30, NULL, NULL, &lock, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (seconds_since (start), <, 0.2);
  (void)close (h.stdin_fd); /* test cleanup */
  (void)close (h.stdout_fd);
}

/* The rpm-in-upcp deadlock: a holder runs something (a hook) that runs
 * stagehand again. The inner one must fail at once, not wait. */
static void
test_nested_holder_fails_fast (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "outer", 0, NULL, NULL, &lock, &error));

  /* A grandchild through a shell, as a hook would run it. */
  char *argv[] = {
    (char *)"/bin/sh", (char *)"-c", (char *)"\"$0\" --lock-helper acquire \"$1\" 30; exit $?",
    self_exe,          fx->dir,      NULL
  };
  g_autofree char *out = NULL;
  int status = 0;
  gint64 start = g_get_monotonic_time ();
  g_assert_true (
      g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, &error));
  g_assert_no_error (error);
  double elapsed = seconds_since (start);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==,
                   HELPER_EXIT_ERROR_BASE + STAGEHAND_ERROR_LOCK_DEADLOCK);
  g_assert_cmpfloat (elapsed, <, 1.0);
  g_autofree char *pid_text = g_strdup_printf ("PID %d (", (int)getpid ());
  assert_contains (out, pid_text);
  assert_contains (out, "operation outer");
  assert_contains (out, "an ancestor of this process: waiting would deadlock");
}

/* A child forked (not exec'd) from the holder shares its open file
 * description; waiting would never end either. */
static void
test_forked_child_of_holder_fails_fast (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "outer", 0, NULL, NULL, &lock, &error));

  gint64 start = g_get_monotonic_time ();
  pid_t child = fork ();
  g_assert_cmpint (child, >=, 0);
  if (child == 0)
    {
      g_autoptr (GError) child_error = NULL;
      SysrootLock *inner = NULL;
      if (sysroot_lock_acquire (fx->dfd, "inner", 30, NULL, NULL, &inner, &child_error))
        _exit (0);
      if (!g_error_matches (child_error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_DEADLOCK)
          || strstr (child_error->message, "would deadlock") == NULL)
        _exit (2);
      _exit (3);
    }
  int status;
  g_assert_cmpint (waitpid (child, &status, 0), ==, child);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 3);
  g_assert_cmpfloat (seconds_since (start), <, 1.0);
}

static void
test_second_acquire_in_same_process_fails_fast (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SysrootLock) lock = NULL;
  g_assert_true (sysroot_lock_acquire (fx->dfd, "outer", 0, NULL, NULL, &lock, &error));

  g_autoptr (SysrootLock) inner = NULL;
  gint64 start = g_get_monotonic_time ();
  g_assert_false (sysroot_lock_acquire (fx->dfd, "inner", 30, NULL, NULL, &inner, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_LOCK_DEADLOCK);
  g_assert_cmpfloat (seconds_since (start), <, 1.0);
  assert_contains (error->message, "this process itself");
  assert_contains (error->message, "operation outer");
}

static void
test_describe (void)
{
  LockHolder holder = {
    .pid = 123,
    .command = (char *)"stagehand stage /img.tar",
    .operation = (char *)"stage",
    .start_time = g_get_real_time () - 12 * G_USEC_PER_SEC - 100 * G_TIME_SPAN_MILLISECOND,
  };
  g_autofree char *line = lock_holder_describe (&holder);
  g_assert_cmpstr (line, ==, "PID 123 (stagehand stage /img.tar), operation stage, held for 12 s");

  LockHolder foreign
      = { .pid = 77, .command = (char *)"python3 -c x", .operation = (char *)"unknown" };
  g_autofree char *foreign_line = lock_holder_describe (&foreign);
  g_assert_cmpstr (foreign_line, ==, "PID 77 (python3 -c x)");

  LockHolder nobody = { .pid = 0, .command = (char *)"", .operation = (char *)"unknown" };
  g_autofree char *nobody_line = lock_holder_describe (&nobody);
  g_assert_cmpstr (nobody_line, ==, "an unidentified process");
}

#define ADD(name, func) g_test_add (name, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "--lock-helper") == 0)
    return helper_main (argc, argv);

  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  g_assert_nonnull (self_exe);
  g_test_init (&argc, &argv, NULL);

  ADD ("/lock/acquire-writes-metadata-release-clears-it",
       test_acquire_writes_metadata_release_clears_it);
  ADD ("/lock/contended-times-out-naming-holder", test_contended_times_out_naming_holder);
  ADD ("/lock/query-names-live-holder", test_query_names_live_holder);
  ADD ("/lock/foreign-holder-is-named", test_foreign_holder_is_named);
  ADD ("/lock/inherited-fd-holder-is-named", test_inherited_fd_holder_is_named);
  ADD ("/lock/sigkilled-holder-releases-at-once", test_sigkilled_holder_releases_at_once);
  ADD ("/lock/nested-holder-fails-fast", test_nested_holder_fails_fast);
  ADD ("/lock/forked-child-of-holder-fails-fast", test_forked_child_of_holder_fails_fast);
  ADD ("/lock/second-acquire-in-same-process-fails-fast",
       test_second_acquire_in_same_process_fails_fast);
  g_test_add_func ("/lock/describe", test_describe);

  return g_test_run ();
}

/* Fixtures of the sysroot lock tests (test-lock, test-lock-file): a state
 * directory per test, queries of its lock, and metadata planted as a holder
 * would write it. */
#include "config.h"

#include "lock-fixtures.h"

#include "fsutil.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  fx->dir = g_dir_make_tmp ("test-lock-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_true (fs_opendir_at (AT_FDCWD, fx->dir, &fx->dfd, &error));
  fx->lock_path = g_build_filename (fx->dir, SYSROOT_LOCK_FILE, NULL);
}

void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  (void)close (fx->dfd); /* test cleanup */
  g_assert_true (fs_rm_rf_at (AT_FDCWD, fx->dir, &error));
  g_assert_no_error (error);
  g_free (fx->dir);
  g_free (fx->lock_path);
}

LockHolder *
query_lock (Fixture *fx)
{
  g_autoptr (GError) error = NULL;
  LockHolder *holder = NULL;
  g_assert_true (sysroot_lock_query (fx->dfd, &holder, &error));
  g_assert_no_error (error);
  return holder;
}

char *
boot_id (void)
{
  char *contents = NULL;
  g_assert_true (g_file_get_contents ("/proc/sys/kernel/random/boot_id", &contents, NULL, NULL));
  return g_strstrip (contents);
}

void
plant_metadata (Fixture *fx, pid_t pid, const char *command, const char *operation)
{
  g_autofree char *boot = boot_id ();
  g_autofree char *text = g_strdup_printf ("[lock]\npid=%d\nprocess_start_ticks=1\ncommand=%s\n"
                                           "operation=%s\nstart_time_usec=%" G_GINT64_FORMAT "\n"
                                           "boot_id=%s\n",
                                           (int)pid, command, operation,
                                           g_get_real_time () - 30 * G_USEC_PER_SEC, boot);
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_write_file_atomic_at (fx->dfd, SYSROOT_LOCK_FILE, text, strlen (text), 0600,
                                          FS_WRITE_NONE, &error));
  g_assert_no_error (error);
}

double
seconds_since (gint64 start)
{
  return (g_get_monotonic_time () - start) / (double)G_USEC_PER_SEC;
}

void
assert_contains (const char *haystack, const char *needle)
{
  if (strstr (haystack, needle) == NULL)
    g_error ("expected \"%s\" in \"%s\"", needle, haystack);
}

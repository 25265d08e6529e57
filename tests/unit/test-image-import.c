/* Importing an image: a directory or a tar stream becomes a faithful copy,
 * whatever the tar stream comes from, and tar's own semantics (duplicates,
 * implicit parents, a directory after its contents) hold. Runs as root in
 * CI; as non-root, what needs root (owners, security.capability) adapts or
 * is skipped. The fixtures are in import-fixtures.c.
 */
#include "config.h"

#include "fsutil.h"
#include "image-import.h"
#include "import-fixtures.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- faithful copies -------------------------------------------------------- */

static void
test_directory_copies_tree_faithfully (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  import_ok (image, t->dfd, "deploy");

  int dfd = open_dir_at (t->dfd, "deploy");
  assert_fixture_tree (dfd);
  close (dfd);
  /* Importing reads the image without changing it, atimes included. */
  dfd = open_dir_at (t->dfd, "image");
  assert_fixture_tree (dfd);
  close (dfd);
  g_autofree char *dest = tmp_file (t, "deploy");
  g_autofree char *want = describe (image);
  g_autofree char *got = describe (dest);
  g_assert_cmpstr (got, ==, want);
}

static void
test_tar_yields_same_tree_as_directory (Tmp *t, gconstpointer data)
{
  const char *compress = data;
  if (*compress != '\0')
    {
      const char *program = g_str_equal (compress, "-z")   ? "gzip"
                            : g_str_equal (compress, "-J") ? "xz"
                                                           : "zstd";
      g_autofree char *found = g_find_program_in_path (program);
      if (found == NULL)
        {
          g_test_skip_printf ("%s is not installed", program);
          return;
        }
    }
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", compress);
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");

  int dfd = open_dir_at (t->dfd, "from-tar");
  assert_fixture_tree (dfd);
  close (dfd);
  g_autofree char *from_dir = tmp_file (t, "from-dir");
  g_autofree char *from_tar = tmp_file (t, "from-tar");
  g_autofree char *want = describe (from_dir);
  g_autofree char *got = describe (from_tar);
  g_assert_cmpstr (got, ==, want);
}

typedef struct
{
  char *path;
  GBytes *data;
} FifoFeed;

static gpointer
feed_fifo (gpointer p)
{
  FifoFeed *feed = p;
  int fd = open (feed->path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (feed->data, &len);
  /* The reader may stop at the end-of-archive blocks and close before the
   * padding is written: EPIPE then is fine (SIGPIPE is ignored in main). */
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      data += n;
      len -= n;
    }
  close (fd);
  return NULL;
}

static void
test_tar_streams_from_fifo (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar
      = make_tar (t, image, "image.tar.zst", g_find_program_in_path ("zstd") ? "--zstd" : "");
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (tar, &contents, &len, NULL));

  FifoFeed feed
      = { tmp_file (t, "image.fifo"), g_bytes_new_take (g_steal_pointer (&contents), len) };
  g_assert_no_errno (mkfifo (feed.path, 0600));
  GThread *writer = g_thread_new ("feed-fifo", feed_fifo, &feed);
  import_ok (feed.path, t->dfd, "deploy");
  g_thread_join (writer);

  int dfd = open_dir_at (t->dfd, "deploy");
  assert_fixture_tree (dfd);
  close (dfd);
  g_free (feed.path);
  g_bytes_unref (feed.data);
}

/* Names are bytes: a UTF-8 process locale must not re-encode or mangle a
 * Latin-1 name stored in the archive, nor the other way round. */
static void
test_tar_keeps_non_utf8_names_in_any_locale (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  g_autofree char *old = g_strdup (setlocale (LC_ALL, NULL));
  const char *locales[] = { "C.UTF-8", "C" };
  for (guint i = 0; i < G_N_ELEMENTS (locales); i++)
    {
      if (setlocale (LC_ALL, locales[i]) == NULL)
        continue;
      g_autofree char *dest = g_strdup_printf ("deploy-%u", i);
      import_ok (tar, t->dfd, dest);
      int dfd = open_dir_at (t->dfd, dest);
      g_autofree char *latin1 = NULL, *utf8 = NULL;
      g_assert_true (fs_read_file_at (dfd, "caf\xe9", G_MAXSIZE, &latin1, NULL, NULL));
      g_assert_cmpstr (latin1, ==, "latin-1 name\n");
      g_assert_true (fs_read_file_at (dfd, "caf\xc3\xa9", G_MAXSIZE, &utf8, NULL, NULL));
      g_assert_cmpstr (utf8, ==, "utf-8 name\n");
      close (dfd);
    }
  setlocale (LC_ALL, old);
}

static void
test_keeps_security_capability (Tmp *t, gconstpointer data)
{
  if (!is_root)
    {
      g_test_skip ("setting security.capability needs root");
      return;
    }
  g_autofree char *setcap = g_find_program_in_path ("setcap");
  if (setcap == NULL)
    {
      g_test_skip ("setcap is not installed (libcap2-bin)");
      return;
    }
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *binary = g_build_filename (image, "usr/bin/caps", NULL);
  /* After the fixture's chown: chown clears capabilities. */
  const char *args[] = { setcap, "cap_net_raw+ep", binary, NULL };
  run_tar (args);
  char want[64];
  ssize_t want_len = lgetxattr (binary, "security.capability", want, sizeof want);
  g_assert_cmpint (want_len, >, 0);

  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");
  const char *dests[] = { "from-dir", "from-tar" };
  for (guint i = 0; i < G_N_ELEMENTS (dests); i++)
    {
      g_autofree char *copy = g_build_filename (t->path, dests[i], "usr/bin/caps", NULL);
      char got[64];
      ssize_t got_len = lgetxattr (copy, "security.capability", got, sizeof got);
      if (got_len < 0)
        g_error ("%s: security.capability: %s", copy, g_strerror (errno));
      g_assert_cmpmem (got, got_len, want, want_len);
      struct stat st;
      g_assert_no_errno (lstat (copy, &st));
      g_assert_cmpuint (st.st_uid, ==, 1234);
      g_assert_cmpint (st.st_mode & 07777, ==, 0750);
    }
}

typedef struct
{
  guint calls;
  guint done_calls;
  ImportProgress last;
} ProgressLog;

static void
log_progress (const ImportProgress *p, gpointer data)
{
  ProgressLog *log = data;
  g_assert_cmpuint (log->done_calls, ==, 0); /* done comes last, once */
  g_assert_cmpuint (p->files, >=, log->last.files);
  g_assert_cmpuint (p->bytes, >=, log->last.bytes);
  log->calls++;
  log->done_calls += p->done;
  log->last = *p;
}

static void
test_reports_progress_and_done (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  const char *sources[] = { image, tar };
  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    {
      ProgressLog log = { 0 };
      ImportOptions options = IMPORT_OPTIONS_INIT;
      options.progress = log_progress;
      options.progress_data = &log;
      g_autofree char *dest = g_strdup_printf ("deploy-%u", i);
      g_autoptr (GError) error = NULL;
      g_assert_true (image_import (sources[i], t->dfd, dest, &options, &error));
      g_assert_no_error (error);
      /* the root and every fixture entry, then the final call */
      g_assert_cmpuint (log.last.files, ==, FIXTURE_LEN + 1);
      g_assert_cmpuint (log.calls, ==, FIXTURE_LEN + 2);
      g_assert_cmpuint (log.done_calls, ==, 1);
      g_assert_true (log.last.done);
      g_assert_cmpuint (log.last.bytes, >=, BIG_SIZE + SPARSE_DATA_LEN);
      g_assert_cmpuint (log.last.bytes, <, BIG_SIZE + SPARSE_SIZE);
    }
}

/* ---- tar semantics ------------------------------------------------------------ */

static void
test_tar_later_duplicate_wins (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "x", '0', 0644, NULL, "first\n");
  tar_add (tar, "x", '0', 0600, NULL, "second\n");
  g_autofree char *path = tar_write (t, tar, "dup.tar");
  import_ok (path, t->dfd, "deploy");
  g_autofree char *contents = NULL;
  int dfd = open_dir_at (t->dfd, "deploy");
  g_assert_true (fs_read_file_at (dfd, "x", G_MAXSIZE, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "second\n");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "x", &st, 0));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  close (dfd);
}

static void
test_tar_creates_implicit_parents (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "./a/b/c", '0', 0644, NULL, "deep\n");
  g_autofree char *path = tar_write (t, tar, "parents.tar");
  import_ok (path, t->dfd, "deploy");
  int dfd = open_dir_at (t->dfd, "deploy");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "a/b", &st, AT_SYMLINK_NOFOLLOW));
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0755);
  g_assert_cmpuint (st.st_uid, ==, getuid ());
  g_assert_true (exists_at (dfd, "a/b/c"));
  close (dfd);
}

static void
test_tar_directory_after_contents_gets_its_metadata (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "d/f", '0', 0644, NULL, "first\n");
  tar_add (tar, "d/", '5', 0710, NULL, NULL);
  g_autofree char *path = tar_write (t, tar, "late-dir.tar");
  import_ok (path, t->dfd, "deploy");
  int dfd = open_dir_at (t->dfd, "deploy");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "d", &st, AT_SYMLINK_NOFOLLOW));
  g_assert_cmpint (st.st_mode & 07777, ==, 0710);
  g_assert_cmpint (st.st_mtim.tv_sec, ==, BASE_SEC);
  close (dfd);
}

/* Deeper than the writer keeps directory fds open for (64): ancestors are
 * closed on the way down and must be re-opened on the way back. */
static void
test_handles_trees_deeper_than_fd_budget (Tmp *t, gconstpointer data)
{
  const guint depth = 150;
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  int dfd = open_dir_at (t->dfd, "image");
  for (guint i = 0; i < depth; i++)
    {
      g_autofree char *content = g_strdup_printf ("level %u\n", i);
      write_at (dfd, "f", content, strlen (content));
      g_assert_no_errno (mkdirat (dfd, "d", 0755));
      int child = open_dir_at (dfd, "d");
      close (dfd);
      dfd = child;
    }
  close (dfd);
  g_autofree char *image = tmp_file (t, "image");
  g_autofree char *tar = make_tar (t, image, "deep.tar", "");
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");

  const char *dests[] = { "from-dir", "from-tar" };
  for (guint k = 0; k < G_N_ELEMENTS (dests); k++)
    {
      dfd = open_dir_at (t->dfd, dests[k]);
      for (guint i = 0; i < depth; i++)
        {
          g_autofree char *contents = NULL;
          g_assert_true (fs_read_file_at (dfd, "f", G_MAXSIZE, &contents, NULL, NULL));
          g_autofree char *want = g_strdup_printf ("level %u\n", i);
          g_assert_cmpstr (contents, ==, want);
          int child = open_dir_at (dfd, "d");
          close (dfd);
          dfd = child;
        }
      close (dfd);
    }
}

int
main (int argc, char **argv)
{
  /* The FIFO feeder may write after the importer stopped reading. */
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);
  is_root = geteuid () == 0;

  g_test_add ("/import/directory/copies-tree-faithfully", Tmp, NULL, tmp_setup,
              test_directory_copies_tree_faithfully, tmp_teardown);
  g_test_add ("/import/tar/yields-same-tree-as-directory", Tmp, "", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/gzip-yields-same-tree", Tmp, "-z", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/xz-yields-same-tree", Tmp, "-J", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/zstd-yields-same-tree", Tmp, "--zstd", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/streams-from-fifo", Tmp, NULL, tmp_setup, test_tar_streams_from_fifo,
              tmp_teardown);
  g_test_add ("/import/tar/keeps-non-utf8-names-in-any-locale", Tmp, NULL, tmp_setup,
              test_tar_keeps_non_utf8_names_in_any_locale, tmp_teardown);
  g_test_add ("/import/keeps-security-capability", Tmp, NULL, tmp_setup,
              test_keeps_security_capability, tmp_teardown);
  g_test_add ("/import/reports-progress-and-done", Tmp, NULL, tmp_setup,
              test_reports_progress_and_done, tmp_teardown);
  g_test_add ("/import/tar/later-duplicate-wins", Tmp, NULL, tmp_setup,
              test_tar_later_duplicate_wins, tmp_teardown);
  g_test_add ("/import/tar/creates-implicit-parents", Tmp, NULL, tmp_setup,
              test_tar_creates_implicit_parents, tmp_teardown);
  g_test_add ("/import/tar/directory-after-contents-gets-its-metadata", Tmp, NULL, tmp_setup,
              test_tar_directory_after_contents_gets_its_metadata, tmp_teardown);
  g_test_add ("/import/handles-trees-deeper-than-fd-budget", Tmp, NULL, tmp_setup,
              test_handles_trees_deeper_than_fd_budget, tmp_teardown);
  return g_test_run ();
}

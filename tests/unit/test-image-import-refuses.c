/* Importing an image refuses a hostile or broken one, and the caller's
 * mistakes, with the entry (or the image) named and nothing left behind,
 * inside the destination or outside the image. Runs as root in CI; as
 * non-root, the device node test is skipped. The fixtures are in
 * import-fixtures.c.
 */
#include "config.h"

#include "errors.h"
#include "image-import.h"
#include "import-fixtures.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- hostile images ----------------------------------------------------------- */

typedef struct
{
  const char *test;
  const char *message;
} Hostile;

/* Each archive first writes a harmless entry, so refusing later must also
 * remove what was already written. "%s" in an entry stands for a directory
 * outside the image that must stay empty. */
static void
build_hostile (GByteArray *tar, const char *test, const char *outside)
{
  tar_add (tar, "ok", '0', 0644, NULL, "harmless\n");
  if (g_str_equal (test, "refuses-path-escape"))
    tar_add (tar, "../x", '0', 0644, NULL, "escaped\n");
  else if (g_str_equal (test, "refuses-dotdot-inside-path"))
    tar_add (tar, "usr/../../etc", '5', 0755, NULL, NULL);
  else if (g_str_equal (test, "refuses-absolute-path"))
    tar_add (tar, "/etc/x", '0', 0644, NULL, "absolute\n");
  else if (g_str_equal (test, "refuses-path-through-symlink"))
    {
      tar_add (tar, "a", '2', 0777, outside, NULL);
      tar_add (tar, "a/passwd", '0', 0644, NULL, "pwned\n");
    }
  else if (g_str_equal (test, "refuses-hardlink-leaving-image"))
    tar_add (tar, "h", '1', 0644, "../outside", NULL);
  else if (g_str_equal (test, "refuses-absolute-hardlink"))
    tar_add (tar, "h", '1', 0644, "/etc/passwd", NULL);
  else if (g_str_equal (test, "refuses-hardlink-to-unwritten-entry"))
    {
      tar_add (tar, "h", '1', 0644, "later", NULL);
      tar_add (tar, "later", '0', 0644, NULL, "later\n");
    }
  else if (g_str_equal (test, "refuses-hardlink-to-directory"))
    {
      tar_add (tar, "d/", '5', 0755, NULL, NULL);
      tar_add (tar, "h", '1', 0644, "d", NULL);
    }
  else if (g_str_equal (test, "refuses-char-device-outside-dev"))
    tar_add (tar, "usr/lib/null", '3', 0666, NULL, NULL);
  else if (g_str_equal (test, "refuses-block-device-outside-dev"))
    tar_add (tar, "usr/sda", '4', 0660, NULL, NULL);
  else if (g_str_equal (test, "refuses-device-named-dev"))
    tar_add (tar, "dev", '3', 0666, NULL, NULL);
  else if (g_str_equal (test, "refuses-device-under-nested-dev"))
    tar_add (tar, "usr/dev/null", '3', 0666, NULL, NULL);
  else if (g_str_equal (test, "refuses-replacing-directory"))
    {
      tar_add (tar, "d/", '5', 0755, NULL, NULL);
      tar_add (tar, "d", '0', 0644, NULL, "not a dir\n");
    }
  else if (g_str_equal (test, "refuses-conflicting-duplicate"))
    {
      tar_add (tar, "x", '0', 0644, NULL, "file\n");
      tar_add (tar, "x", '2', 0777, "/etc/shadow", NULL);
    }
  else if (g_str_equal (test, "refuses-path-through-file"))
    {
      tar_add (tar, "f", '0', 0644, NULL, "file\n");
      tar_add (tar, "f/g", '0', 0644, NULL, "below a file\n");
    }
  else if (g_str_equal (test, "escapes-unprintable-names-in-messages"))
    tar_add (tar, "bad\x01name\xff/\"q\"/../x", '0', 0644, NULL, "x\n");
  else
    g_assert_not_reached ();
}

static const Hostile HOSTILE[] = {
  { "refuses-path-escape", "image entry \"../x\": path leaves the image (\"..\")" },
  { "refuses-dotdot-inside-path", "image entry \"usr/../../etc\": path leaves the image (\"..\")" },
  { "refuses-absolute-path", "image entry \"/etc/x\": absolute path" },
  { "refuses-path-through-symlink",
    "image entry \"a/passwd\": path goes through the symlink \"a\"" },
  { "refuses-hardlink-leaving-image",
    "image entry \"h\": hard link target \"../outside\" leaves the image (\"..\")" },
  { "refuses-absolute-hardlink",
    "image entry \"h\": hard link target \"/etc/passwd\" is an absolute path" },
  { "refuses-hardlink-to-unwritten-entry",
    "image entry \"h\": hard link target \"later\" is not an entry written earlier in the image" },
  { "refuses-hardlink-to-directory", "image entry \"h\": hard link target \"d\" is a directory" },
  { "refuses-char-device-outside-dev",
    "image entry \"usr/lib/null\": character device nodes are not allowed in an image (except "
    "under /dev)" },
  { "refuses-block-device-outside-dev",
    "image entry \"usr/sda\": block device nodes are not allowed in an image (except under /dev)" },
  { "refuses-device-named-dev",
    "image entry \"dev\": character device nodes are not allowed in an image (except under "
    "/dev)" },
  { "refuses-device-under-nested-dev",
    "image entry \"usr/dev/null\": character device nodes are not allowed in an image (except "
    "under /dev)" },
  { "refuses-replacing-directory",
    "image entry \"d\": would replace a directory with a regular file" },
  { "refuses-conflicting-duplicate",
    "image entry \"x\": duplicate entry of a different type (a regular file, then a symlink)" },
  { "refuses-path-through-file",
    "image entry \"f/g\": path goes through \"f\", which is a regular file" },
  { "escapes-unprintable-names-in-messages",
    "image entry \"bad\\x01name\\xff/\\\"q\\\"/../x\": path leaves the image (\"..\")" },
};

static void
assert_refused_and_gone (Tmp *t, const char *image, GQuark domain, int code, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, domain, code);
  g_assert_cmpstr (error->message, ==, message);
  g_assert_false (exists_at (t->dfd, "deploy"));
}

static void
test_tar_refuses_hostile_entry (Tmp *t, gconstpointer data)
{
  const Hostile *h = data;
  g_assert_no_errno (mkdirat (t->dfd, "outside", 0700));
  g_autofree char *outside = tmp_file (t, "outside");
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  build_hostile (tar, h->test, outside);
  g_autofree char *path = tar_write (t, tar, "hostile.tar");
  assert_refused_and_gone (t, path, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID, h->message);

  /* Nothing reached the outside either. */
  int dfd = open_dir_at (t->dfd, "outside");
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  collect_paths (dfd, "", paths);
  close (dfd);
  g_assert_cmpuint (paths->len, ==, 0);
}

static void
test_directory_refuses_socket (Tmp *t, gconstpointer data)
{
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  g_autofree char *sock_path = g_build_filename (t->path, "image", "sock", NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_assert_cmpuint (strlen (sock_path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, sock_path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_no_errno (bind (s, (struct sockaddr *)&addr, sizeof addr));
  close (s);
  g_autofree char *image = tmp_file (t, "image");
  assert_refused_and_gone (t, image, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID,
                           "image entry \"sock\": sockets are not allowed in an image");
}

static void
test_directory_refuses_device_node (Tmp *t, gconstpointer data)
{
  if (!is_root)
    {
      g_test_skip ("creating a device node needs root");
      return;
    }
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  g_assert_no_errno (mkdirat (t->dfd, "image/usr", 0755));
  g_assert_no_errno (mknodat (t->dfd, "image/usr/null", S_IFCHR | 0666, makedev (1, 3)));
  g_autofree char *image = tmp_file (t, "image");
  assert_refused_and_gone (t, image, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID,
                           "image entry \"usr/null\": character device nodes are not allowed in "
                           "an image (except under /dev)");
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static void
record_progress (const ImportProgress *progress, gpointer user_data)
{
  *(ImportProgress *)user_data = *progress;
}

/* Imports @image, which must succeed, and checks that dev/ holds only
 * what is not a device node and that two device nodes were counted. */
static void
assert_dev_nodes_skipped (Tmp *t, const char *image)
{
  ImportProgress last = { 0 };
  ImportOptions options = IMPORT_OPTIONS_INIT;
  options.progress = record_progress;
  options.progress_data = &last;
  g_autoptr (GError) error = NULL;
  g_assert_true (image_import (image, t->dfd, "deploy", &options, &error));
  g_assert_no_error (error);
  g_assert_true (last.done);
  g_assert_cmpuint (last.devices_skipped, ==, 2);
  int dfd = open_dir_at (t->dfd, "deploy");
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  collect_paths (dfd, "", paths);
  close (dfd);
  g_ptr_array_sort (paths, compare_paths);
  g_ptr_array_add (paths, NULL);
  g_autofree char *joined = g_strjoinv (" ", (char **)paths->pdata);
  g_assert_cmpstr (joined, ==, "dev dev/pts dev/stdout");
}

/* Root trees as mmdebstrap, debootstrap and `docker export` make them hold
 * device nodes under /dev; /dev is a devtmpfs at boot, so they are skipped
 * (never created) and counted, while the rest of dev/ is kept. */
static void
test_tar_skips_device_nodes_under_dev (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "dev/", '5', 0755, NULL, NULL);
  tar_add (tar, "dev/null", '3', 0666, NULL, NULL);
  tar_add (tar, "dev/pts/", '5', 0755, NULL, NULL);
  tar_add (tar, "dev/pts/ptmx", '3', 0666, NULL, NULL);
  tar_add (tar, "dev/stdout", '2', 0777, "/proc/self/fd/1", NULL);
  g_autofree char *path = tar_write (t, tar, "rootfs.tar");
  assert_dev_nodes_skipped (t, path);
}

static void
test_directory_skips_device_nodes_under_dev (Tmp *t, gconstpointer data)
{
  if (!is_root)
    {
      g_test_skip ("creating a device node needs root");
      return;
    }
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  g_assert_no_errno (mkdirat (t->dfd, "image/dev", 0755));
  g_assert_no_errno (mkdirat (t->dfd, "image/dev/pts", 0755));
  g_assert_no_errno (mknodat (t->dfd, "image/dev/null", S_IFCHR | 0666, makedev (1, 3)));
  g_assert_no_errno (mknodat (t->dfd, "image/dev/pts/loop0", S_IFBLK | 0660, makedev (7, 0)));
  g_assert_no_errno (symlinkat ("/proc/self/fd/1", t->dfd, "image/dev/stdout"));
  g_autofree char *image = tmp_file (t, "image");
  assert_dev_nodes_skipped (t, image);
}

/* `stagehand deploy /` with the sysroot at / would import the deployment
 * into itself, forever. */
static void
test_directory_refuses_to_contain_destination (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  int image_dfd = open_dir_at (t->dfd, "image");
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, image_dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_assert_cmpstr (error->message, ==, "image entry \"deploy\": is the destination of this import");
  g_assert_false (exists_at (image_dfd, "deploy"));
  close (image_dfd);
}

/* ---- the caller's mistakes and broken images -------------------------------- */

static void
test_refuses_existing_destination (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_assert_no_errno (mkdirat (t->dfd, "deploy", 0755));
  write_at (t->dfd, "deploy/keep", "mine\n", 5);
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST);
  g_assert_cmpstr (error->message, ==, "creating deploy: File exists");
  /* Someone else's directory is not ours to clean up. */
  g_assert_true (exists_at (t->dfd, "deploy/keep"));
}

static void
test_names_missing_image (Tmp *t, gconstpointer data)
{
  g_autofree char *image = tmp_file (t, "no-such-image");
  g_autofree char *want = g_strdup_printf ("opening image %s: No such file or directory", image);
  assert_refused_and_gone (t, image, G_FILE_ERROR, G_FILE_ERROR_NOENT, want);
}

static void
test_names_non_archive_file (Tmp *t, gconstpointer data)
{
  write_at (t->dfd, "notes.txt", "these are not the droids\n", 25);
  g_autofree char *image = tmp_file (t, "notes.txt");
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_autofree char *prefix = g_strdup_printf ("reading image %s: not a tar archive (", image);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, prefix));
  g_assert_false (exists_at (t->dfd, "deploy"));
}

static void
test_truncated_tar_leaves_nothing (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (tar, &contents, &len, NULL));
  g_autofree char *cut = tmp_file (t, "cut.tar");
  g_assert_true (g_file_set_contents (cut, contents, len * 6 / 10, NULL));

  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (cut, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_test_message ("%s", error->message);
  g_autofree char *names = g_strdup_printf ("reading image %s: ", cut);
  g_assert_nonnull (strstr (error->message, names));
  g_assert_false (exists_at (t->dfd, "deploy"));
}

/* A file the workers write fails (here: larger than RLIMIT_FSIZE allows,
 * so its pwrite gets EFBIG) among files that succeed: the import fails
 * with that entry named and removes the tree, from a directory and from a
 * tar image alike (both hand their regular files to the workers). */
static void
test_worker_failure_fails_the_import (Tmp *t, gconstpointer data)
{
  gboolean tar = data != NULL;
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  int dfd = open_dir_at (t->dfd, "image");
  char small[4096];
  memset (small, 's', sizeof small);
  for (guint i = 0; i < 64; i++)
    {
      g_autofree char *name = g_strdup_printf ("small-%02u", i);
      write_at (dfd, name, small, sizeof small);
      if (i == 32)
        {
          g_autofree char *big = g_malloc (256 * 1024);
          memset (big, 'b', 256 * 1024);
          write_at (dfd, "big", big, 256 * 1024);
        }
    }
  close (dfd);
  g_autofree char *image = tmp_file (t, "image");
  if (tar)
    image = make_tar (t, image, "image.tar", "");

  struct rlimit old_limit, limit;
  g_assert_no_errno (getrlimit (RLIMIT_FSIZE, &old_limit));
  limit = old_limit;
  limit.rlim_cur = 128 * 1024;
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &limit));
  g_autoptr (GError) error = NULL;
  gboolean ok = image_import (image, t->dfd, "deploy", NULL, &error);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &old_limit));
  signal (SIGXFSZ, old_handler);

  g_assert_false (ok);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  /* tar names entries as stored: "./big". */
  g_assert_true (
      g_str_has_prefix (error->message, tar ? "image entry \"./big\": " : "image entry \"big\": "));
  g_autofree char *reason = g_strdup_printf (": %s", g_strerror (EFBIG));
  g_assert_true (g_str_has_suffix (error->message, reason));
  g_assert_false (exists_at (t->dfd, "deploy"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  is_root = geteuid () == 0;

  for (guint i = 0; i < G_N_ELEMENTS (HOSTILE); i++)
    {
      g_autofree char *name = g_strdup_printf ("/import/tar/%s", HOSTILE[i].test);
      g_test_add (name, Tmp, &HOSTILE[i], tmp_setup, test_tar_refuses_hostile_entry, tmp_teardown);
    }
  g_test_add ("/import/directory/refuses-socket", Tmp, NULL, tmp_setup,
              test_directory_refuses_socket, tmp_teardown);
  g_test_add ("/import/directory/refuses-device-node", Tmp, NULL, tmp_setup,
              test_directory_refuses_device_node, tmp_teardown);
  g_test_add ("/import/tar/skips-device-nodes-under-dev", Tmp, NULL, tmp_setup,
              test_tar_skips_device_nodes_under_dev, tmp_teardown);
  g_test_add ("/import/directory/skips-device-nodes-under-dev", Tmp, NULL, tmp_setup,
              test_directory_skips_device_nodes_under_dev, tmp_teardown);
  g_test_add ("/import/directory/refuses-to-contain-destination", Tmp, NULL, tmp_setup,
              test_directory_refuses_to_contain_destination, tmp_teardown);
  g_test_add ("/import/refuses-existing-destination", Tmp, NULL, tmp_setup,
              test_refuses_existing_destination, tmp_teardown);
  g_test_add ("/import/names-missing-image", Tmp, NULL, tmp_setup, test_names_missing_image,
              tmp_teardown);
  g_test_add ("/import/names-non-archive-file", Tmp, NULL, tmp_setup, test_names_non_archive_file,
              tmp_teardown);
  g_test_add ("/import/directory/worker-failure-fails-the-import", Tmp, NULL, tmp_setup,
              test_worker_failure_fails_the_import, tmp_teardown);
  g_test_add ("/import/tar/worker-failure-fails-the-import", Tmp, "tar", tmp_setup,
              test_worker_failure_fails_the_import, tmp_teardown);
  g_test_add ("/import/tar/truncated-archive-leaves-nothing", Tmp, NULL, tmp_setup,
              test_truncated_tar_leaves_nothing, tmp_teardown);
  return g_test_run ();
}

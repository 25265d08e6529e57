/* os-release(5) parsing: an image's os name, entry title and version.
 *
 * The ID becomes a directory name and the title and version become lines of
 * a boot entry, so besides the quoting rules these tests pin down what is
 * refused and what is made safe.
 */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "osrelease.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static OsRelease *
parse_ok (const char *contents)
{
  g_autoptr (GError) error = NULL;
  OsRelease *osr = NULL;
  g_assert_true (os_release_parse (contents, "usr/lib/os-release", &osr, &error));
  g_assert_no_error (error);
  g_assert_nonnull (osr);
  return osr;
}

static gboolean
has_control_character (const char *s)
{
  for (const char *p = s; p && *p; p++)
    if (g_ascii_iscntrl (*p))
      return TRUE;
  return FALSE;
}

static void
test_double_quoted_value_is_unquoted (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("NAME=\"Fedora Linux\"\n"
                                        "ID=fedora\n"
                                        "PRETTY_NAME=\"Fedora Linux 40 (Workstation Edition)\"\n"
                                        "VERSION_ID=\"40\"\n");
  g_assert_cmpstr (osr->id, ==, "fedora");
  g_assert_cmpstr (osr->pretty_name, ==, "Fedora Linux 40 (Workstation Edition)");
  g_assert_cmpstr (osr->version_id, ==, "40");
}

static void
test_single_quoted_value_keeps_backslashes (void)
{
  /* Inside single quotes nothing is special, as in the shell. */
  g_autoptr (OsRelease) osr = parse_ok ("ID='debian'\n"
                                        "PRETTY_NAME='C:\\ drive \"edition\"'\n");
  g_assert_cmpstr (osr->id, ==, "debian");
  g_assert_cmpstr (osr->pretty_name, ==, "C:\\ drive \"edition\"");
}

static void
test_backslash_escapes_shell_specials_in_double_quotes (void)
{
  g_autoptr (OsRelease) osr
      = parse_ok ("ID=test\n"
                  "PRETTY_NAME=\"Say \\\"hi\\\" for \\$5 with a \\\\ and a \\`tick\\`\"\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Say \"hi\" for $5 with a \\ and a `tick`");
}

static void
test_backslash_escapes_outside_quotes (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=test\n"
                                        "PRETTY_NAME=Test\\ OS\\ \\\"1\\\"\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Test OS \"1\"");
}

static void
test_comments_blank_and_malformed_lines_are_ignored (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("# ID=wrong\n"
                                        "\n"
                                        "   # PRETTY_NAME=\"Wrong\"\n"
                                        "this line is not an assignment\n"
                                        "=no-key\n"
                                        "ID=arch\n"
                                        "PRETTY_NAME=\"Arch Linux\"\n");
  g_assert_cmpstr (osr->id, ==, "arch");
  g_assert_cmpstr (osr->pretty_name, ==, "Arch Linux");
}

static void
test_crlf_line_endings_are_tolerated (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=alpine\r\nVERSION_ID=3.20.1\r\n");
  g_assert_cmpstr (osr->id, ==, "alpine");
  g_assert_cmpstr (osr->version_id, ==, "3.20.1");
}

static void
test_later_assignment_wins (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=first\nID=second\n");
  g_assert_cmpstr (osr->id, ==, "second");
}

static void
test_missing_id_is_linux (void)
{
  /* os-release(5): "If not set, a default of ID=linux may be used." */
  g_autoptr (OsRelease) osr = parse_ok ("NAME=Something\n");
  g_assert_cmpstr (osr->id, ==, "linux");

  g_autoptr (OsRelease) empty = parse_ok ("ID=\"\"\n");
  g_assert_cmpstr (empty->id, ==, "linux");

  g_autoptr (OsRelease) nothing = parse_ok ("");
  g_assert_cmpstr (nothing->id, ==, "linux");
  g_assert_cmpstr (nothing->pretty_name, ==, "Linux");
  g_assert_null (nothing->version_id);
  g_assert_null (nothing->version);
}

static void
test_invalid_id_is_refused (void)
{
  /* The ID names a directory below deploy/ and <boot>/stagehand/. */
  static const char *const bad[] = {
    "Fedora",
    "my os",
    "../etc",
    ".hidden",
    "-dash",
    "a/b",
    "caf\xc3\xa9",
    "x\\\"y",                                                            /* unquotes to x"y */
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *contents = g_strdup_printf ("ID=\"%s\"\n", bad[i]);
      g_autoptr (GError) error = NULL;
      g_autoptr (OsRelease) osr = NULL;
      g_test_message ("ID=\"%s\"", bad[i]);
      g_assert_false (os_release_parse (contents, "etc/os-release", &osr, &error));
      g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
      g_assert_null (osr);
      g_assert_nonnull (strstr (error->message, "etc/os-release"));
      g_assert_nonnull (strstr (error->message, "ID="));
    }
}

static void
test_os_name_validity (void)
{
  static const char *const good[]
      = { "fedora", "opensuse-tumbleweed", "rhel", "a", "os_1.2", "0day",
          /* 64 */
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
  static const char *const bad[] = { "", "Fedora", ".", "..", ".x", "-x", "a b", "a/b", "a\nb" };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    g_assert_true (os_name_is_valid (good[i]));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_false (os_name_is_valid (bad[i]));
  g_assert_false (os_name_is_valid (NULL));
}

static void
test_pretty_name_falls_back_to_name_and_version (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=debian\n"
                                        "NAME=\"Debian GNU/Linux\"\n"
                                        "VERSION=\"12 (bookworm)\"\n"
                                        "VERSION_ID=\"12\"\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Debian GNU/Linux 12 (bookworm)");
  g_assert_cmpstr (osr->version, ==, "12 (bookworm)");
  g_assert_cmpstr (osr->version_id, ==, "12");

  g_autoptr (OsRelease) empty_pretty = parse_ok ("ID=debian\n"
                                                 "PRETTY_NAME=\n"
                                                 "NAME=Debian\n"
                                                 "VERSION=12\n");
  g_assert_cmpstr (empty_pretty->pretty_name, ==, "Debian 12");
}

static void
test_pretty_name_falls_back_to_name_alone (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=arch\nNAME=\"Arch Linux\"\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Arch Linux");
  g_assert_null (osr->version);
}

static void
test_pretty_name_falls_back_to_linux (void)
{
  g_autoptr (OsRelease) osr = parse_ok ("ID=custom\nVERSION=1\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Linux");
}

static void
test_control_characters_in_title_become_spaces (void)
{
  /* The title is the entry's "title" line. */
  g_autoptr (OsRelease) osr = parse_ok ("ID=test\nPRETTY_NAME=\"Test\tOS\r1\x1b\"\n");
  g_assert_cmpstr (osr->pretty_name, ==, "Test OS 1 ");
}

static void
test_control_characters_in_version_are_not_kept (void)
{
  /* VERSION_ID (or VERSION) becomes the entry's "version" line and the
   * origin's version, which origin_parse() refuses when it holds a control
   * character: the image would stage and then never load again. */
  g_autoptr (OsRelease) osr = parse_ok ("ID=test\n"
                                        "VERSION_ID=\"1\t2\"\n"
                                        "VERSION=\"1\r(two)\x1b\"\n");
  g_assert_nonnull (osr->version_id);
  g_assert_nonnull (osr->version);
  g_autofree char *version_id = g_strescape (osr->version_id, NULL);
  g_autofree char *version = g_strescape (osr->version, NULL);
  if (has_control_character (osr->version_id))
    g_test_fail_printf ("VERSION_ID kept a control character: \"%s\"", version_id);
  if (has_control_character (osr->version))
    g_test_fail_printf ("VERSION kept a control character: \"%s\"", version);
}

/* A temporary image tree holding the given os-release files (NULL: absent). */
static int
make_tree (char **ret_path, const char *usr_lib, const char *etc)
{
  g_autoptr (GError) error = NULL;
  char *path = g_dir_make_tmp ("stagehand-test-osrelease-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *usr_lib_dir = g_build_filename (path, "usr", "lib", NULL);
  g_autofree char *etc_dir = g_build_filename (path, "etc", NULL);
  g_assert_cmpint (g_mkdir_with_parents (usr_lib_dir, 0755), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (etc_dir, 0755), ==, 0);
  if (usr_lib)
    {
      g_autofree char *f = g_build_filename (usr_lib_dir, "os-release", NULL);
      g_assert_true (g_file_set_contents (f, usr_lib, -1, &error));
    }
  if (etc)
    {
      g_autofree char *f = g_build_filename (etc_dir, "os-release", NULL);
      g_assert_true (g_file_set_contents (f, etc, -1, &error));
    }
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  *ret_path = path;
  return fd;
}

static void
remove_tree (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (AT_FDCWD, path, &error));
  g_assert_no_error (error);
}

static void
test_load_prefers_usr_lib_over_etc (void)
{
  g_autofree char *path = NULL;
  autofd tree = make_tree (&path, "ID=from-usr\n", "ID=from-etc\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (OsRelease) osr = NULL;
  g_assert_true (os_release_load (tree, &osr, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (osr->id, ==, "from-usr");
  remove_tree (path);
}

static void
test_load_falls_back_to_etc (void)
{
  g_autofree char *path = NULL;
  autofd tree = make_tree (&path, NULL, "ID=from-etc\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (OsRelease) osr = NULL;
  g_assert_true (os_release_load (tree, &osr, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (osr->id, ==, "from-etc");
  remove_tree (path);
}

static void
test_load_refuses_image_without_os_release (void)
{
  g_autofree char *path = NULL;
  autofd tree = make_tree (&path, NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (OsRelease) osr = NULL;
  g_assert_false (os_release_load (tree, &osr, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "usr/lib/os-release"));
  g_assert_nonnull (strstr (error->message, "etc/os-release"));
  g_assert_null (osr);
  remove_tree (path);
}

static void
test_load_names_the_file_with_a_bad_id (void)
{
  g_autofree char *path = NULL;
  autofd tree = make_tree (&path, NULL, "ID=\"Not Valid\"\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (OsRelease) osr = NULL;
  g_assert_false (os_release_load (tree, &osr, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "etc/os-release"));
  g_assert_nonnull (strstr (error->message, "Not Valid"));
  remove_tree (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/osrelease/double-quoted-value-is-unquoted",
                   test_double_quoted_value_is_unquoted);
  g_test_add_func ("/osrelease/single-quoted-value-keeps-backslashes",
                   test_single_quoted_value_keeps_backslashes);
  g_test_add_func ("/osrelease/backslash-escapes-shell-specials-in-double-quotes",
                   test_backslash_escapes_shell_specials_in_double_quotes);
  g_test_add_func ("/osrelease/backslash-escapes-outside-quotes",
                   test_backslash_escapes_outside_quotes);
  g_test_add_func ("/osrelease/comments-blank-and-malformed-lines-are-ignored",
                   test_comments_blank_and_malformed_lines_are_ignored);
  g_test_add_func ("/osrelease/crlf-line-endings-are-tolerated",
                   test_crlf_line_endings_are_tolerated);
  g_test_add_func ("/osrelease/later-assignment-wins", test_later_assignment_wins);
  g_test_add_func ("/osrelease/missing-id-is-linux", test_missing_id_is_linux);
  g_test_add_func ("/osrelease/invalid-id-is-refused", test_invalid_id_is_refused);
  g_test_add_func ("/osrelease/os-name-validity", test_os_name_validity);
  g_test_add_func ("/osrelease/pretty-name-falls-back-to-name-and-version",
                   test_pretty_name_falls_back_to_name_and_version);
  g_test_add_func ("/osrelease/pretty-name-falls-back-to-name-alone",
                   test_pretty_name_falls_back_to_name_alone);
  g_test_add_func ("/osrelease/pretty-name-falls-back-to-linux",
                   test_pretty_name_falls_back_to_linux);
  g_test_add_func ("/osrelease/control-characters-in-title-become-spaces",
                   test_control_characters_in_title_become_spaces);
  g_test_add_func ("/osrelease/control-characters-in-version-are-not-kept",
                   test_control_characters_in_version_are_not_kept);
  g_test_add_func ("/osrelease/load-prefers-usr-lib-over-etc", test_load_prefers_usr_lib_over_etc);
  g_test_add_func ("/osrelease/load-falls-back-to-etc", test_load_falls_back_to_etc);
  g_test_add_func ("/osrelease/load-refuses-image-without-os-release",
                   test_load_refuses_image_without_os_release);
  g_test_add_func ("/osrelease/load-names-the-file-with-a-bad-id",
                   test_load_names_the_file_with_a_bad_id);

  return g_test_run ();
}

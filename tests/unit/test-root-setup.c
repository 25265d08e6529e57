/* The pure parts of stagehand-root-setup: its own arguments, and the
 * stagehand= kernel argument it shares with the core (deployment-karg.c):
 * which value a command line gives, and which paths are refused before
 * anything is touched. The mounts themselves are tested for real in
 * tests/privileged/23-root-setup-makes-the-deployment-the-root.sh.
 */
#include "deployment-karg.h"
#include "root-setup.h"

#include <glib.h>
#include <stdlib.h>

static void
assert_found (const char *cmdline, const char *want)
{
  char *got = deployment_karg_find (cmdline);
  g_test_message ("cmdline \"%s\"", cmdline ? cmdline : "(null)");
  g_assert_cmpstr (got, ==, want);
  free (got);
}

static void
test_cmdline_finds_the_value (void)
{
  assert_found ("root=/dev/vda2 ro stagehand=/stagehand/deploy/debian/3 quiet",
                "/stagehand/deploy/debian/3");
  assert_found ("stagehand=/stagehand/deploy/debian/3\n", "/stagehand/deploy/debian/3");
  assert_found ("\tstagehand=/a  ", "/a");
}

static void
test_cmdline_without_stagehand_is_none (void)
{
  assert_found ("root=/dev/vda2 ro quiet", NULL);
  assert_found ("", NULL);
  assert_found (NULL, NULL);
  /* Only the key itself: not a longer key, not a value that mentions it. */
  assert_found ("stagehandx=/stagehand/deploy/a/1 foo.stagehand=/x", NULL);
  assert_found ("init=/bin/sh stagehand", NULL);
  assert_found ("rd.cmdline=\"stagehand=/stagehand/deploy/a/1\"", NULL);
}

static void
test_cmdline_last_value_wins (void)
{
  /* As the core reads it (a bootloader appending its own): the last one. */
  assert_found ("stagehand=/stagehand/deploy/a/1 x stagehand=/stagehand/deploy/a/2",
                "/stagehand/deploy/a/2");
  assert_found ("stagehand=/stagehand/deploy/a/1 stagehand=", "");
}

static void
test_cmdline_quotes_as_the_kernel_strips_them (void)
{
  assert_found ("\"stagehand=/stagehand/deploy/a/1\"", "/stagehand/deploy/a/1");
  assert_found ("stagehand=\"/stagehand/deploy/a/1\"", "/stagehand/deploy/a/1");
  /* A quoted value keeps its space: it is then refused by the check. */
  assert_found ("a=\"x y\" stagehand=\"/b c\" z", "/b c");
}

static void
assert_accepted (const char *value, const char *os, const char *id)
{
  const char *got_os = NULL, *got_id = NULL;
  size_t os_len = 0;
  const char *reason = deployment_karg_check (value, &got_os, &os_len, &got_id);
  g_test_message ("value \"%s\"", value);
  g_assert_null (reason);
  g_autofree char *o = g_strndup (got_os, os_len);
  g_assert_cmpstr (o, ==, os);
  g_assert_cmpstr (got_id, ==, id);
}

static void
assert_refused (const char *value, const char *want)
{
  g_test_message ("value \"%s\"", value ? value : "(null)");
  g_assert_cmpstr (deployment_karg_check (value, NULL, NULL, NULL), ==, want);
}

static void
test_check_accepts_deployments (void)
{
  assert_accepted ("/stagehand/deploy/debian/1", "debian", "1");
  assert_accepted ("/stagehand/deploy/fedora-coreos.x_y/123456789", "fedora-coreos.x_y",
                   "123456789");
}

static void
test_check_refuses_escapes_first (void)
{
  assert_refused ("/stagehand/deploy/../../etc", "contains \"..\"");
  assert_refused ("/stagehand/deploy/debian/..", "contains \"..\"");
  assert_refused ("../stagehand/deploy/debian/1", "contains \"..\"");
  assert_refused ("/stagehand/deploy/debian/1/../2", "contains \"..\"");
  assert_refused ("..", "contains \"..\"");
}

static void
test_check_refuses_relative_and_outside (void)
{
  assert_refused (NULL, "empty path");
  assert_refused ("", "empty path");
  assert_refused ("stagehand/deploy/debian/1", "not an absolute path");
  assert_refused ("/etc/debian/1", "not below /stagehand/deploy/");
  assert_refused ("/stagehand/deployx/debian/1", "not below /stagehand/deploy/");
  assert_refused ("//stagehand/deploy/debian/1", "not below /stagehand/deploy/");
  assert_refused ("/stagehand/deploy/debian", "not of the form /stagehand/deploy/<os>/<id>");
  assert_refused ("/stagehand/deploy/debian/1/", "not of the form /stagehand/deploy/<os>/<id>");
  assert_refused ("/stagehand/deploy/debian/1/usr", "not of the form /stagehand/deploy/<os>/<id>");
}

static void
test_check_refuses_bad_names (void)
{
  assert_refused ("/stagehand/deploy//1", "invalid os name");
  assert_refused ("/stagehand/deploy/Debian/1", "invalid os name");
  assert_refused ("/stagehand/deploy/.hidden/1", "invalid os name");
  assert_refused ("/stagehand/deploy/-x/1", "invalid os name");
  assert_refused ("/stagehand/deploy/a b/1", "invalid os name");
  assert_refused ("/stagehand/deploy/debian/0", "invalid deployment id");
  assert_refused ("/stagehand/deploy/debian/01", "invalid deployment id");
  assert_refused ("/stagehand/deploy/debian/1234567890", "invalid deployment id");
  assert_refused ("/stagehand/deploy/debian/.import-tmp-abc", "invalid deployment id");
  assert_refused ("/stagehand/deploy/debian/", "invalid deployment id");
}

static const char *
parse (const char *const *argv, RootSetupArgs *args, const char **bad)
{
  return root_setup_parse_args (g_strv_length ((char **)argv), (char **)argv, args, bad);
}

static void
test_args_defaults_and_overrides (void)
{
  RootSetupArgs a;
  const char *bad;
  const char *plain[] = { "stagehand-root-setup", "/root", NULL };
  g_assert_null (parse (plain, &a, &bad));
  g_assert_cmpstr (a.root, ==, "/root");
  g_assert_cmpstr (a.cmdline_path, ==, "/proc/cmdline");
  g_assert_cmpstr (a.run_dir, ==, "/run/stagehand");

  const char *all[]
      = { "stagehand-root-setup", "--cmdline=/tmp/c", "/sysroot", "--run-dir=/tmp/r", NULL };
  g_assert_null (parse (all, &a, &bad));
  g_assert_cmpstr (a.root, ==, "/sysroot");
  g_assert_cmpstr (a.cmdline_path, ==, "/tmp/c");
  g_assert_cmpstr (a.run_dir, ==, "/tmp/r");

  const char *dashdash[] = { "stagehand-root-setup", "--", "/-odd", NULL };
  g_assert_null (parse (dashdash, &a, &bad));
  g_assert_cmpstr (a.root, ==, "/-odd");

  const char *help[] = { "stagehand-root-setup", "--help", NULL };
  g_assert_null (parse (help, &a, &bad));
  g_assert_true (a.help);
}

static void
test_args_usage_errors (void)
{
  RootSetupArgs a;
  const char *bad;
  const char *none[] = { "stagehand-root-setup", NULL };
  g_assert_nonnull (parse (none, &a, &bad));
  const char *relative[] = { "stagehand-root-setup", "root", NULL };
  g_assert_cmpstr (parse (relative, &a, &bad), ==, "ROOT must be an absolute path");
  g_assert_cmpstr (bad, ==, "root");
  const char *slash[] = { "stagehand-root-setup", "//", NULL };
  g_assert_cmpstr (parse (slash, &a, &bad), ==, "ROOT cannot be /");
  const char *two[] = { "stagehand-root-setup", "/root", "/sysroot", NULL };
  g_assert_cmpstr (parse (two, &a, &bad), ==, "unexpected argument");
  g_assert_cmpstr (bad, ==, "/sysroot");
  const char *unknown[] = { "stagehand-root-setup", "--root=/x", "/root", NULL };
  g_assert_cmpstr (parse (unknown, &a, &bad), ==, "unknown option");
  const char *empty[] = { "stagehand-root-setup", "--cmdline=", "/root", NULL };
  g_assert_cmpstr (parse (empty, &a, &bad), ==, "empty file name");
  const char *run[] = { "stagehand-root-setup", "--run-dir=run", "/root", NULL };
  g_assert_cmpstr (parse (run, &a, &bad), ==, "the run directory must be an absolute path");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/root-setup/cmdline/finds-the-value", test_cmdline_finds_the_value);
  g_test_add_func ("/root-setup/cmdline/without-stagehand-is-none",
                   test_cmdline_without_stagehand_is_none);
  g_test_add_func ("/root-setup/cmdline/last-value-wins", test_cmdline_last_value_wins);
  g_test_add_func ("/root-setup/cmdline/quotes-as-the-kernel-strips-them",
                   test_cmdline_quotes_as_the_kernel_strips_them);
  g_test_add_func ("/root-setup/check/accepts-deployments", test_check_accepts_deployments);
  g_test_add_func ("/root-setup/check/refuses-escapes-first", test_check_refuses_escapes_first);
  g_test_add_func ("/root-setup/check/refuses-relative-and-outside",
                   test_check_refuses_relative_and_outside);
  g_test_add_func ("/root-setup/check/refuses-bad-names", test_check_refuses_bad_names);
  g_test_add_func ("/root-setup/args/defaults-and-overrides", test_args_defaults_and_overrides);
  g_test_add_func ("/root-setup/args/usage-errors", test_args_usage_errors);
  return g_test_run ();
}

/* /run/stagehand/booted: stagehand-root-setup's marker that this boot runs
 * a deployment and where the physical root is. It decides the default
 * sysroot, so a damaged one is refused with a message that names the file
 * and what is wrong, never half believed.
 */
#include "config.h"

#include "booted.h"
#include "errors.h"
#include "test-util.h"

#include <string.h>

#define WHAT "/run/stagehand/booted"

static void
test_parses_what_the_root_setup_writes (void)
{
  /* Byte for byte what src/root-setup/main.c writes. */
  const char *text = "# Written by stagehand-root-setup in the initramfs.\n"
                     "[booted]\n"
                     "deployment=debian/12\n"
                     "sysroot=/sysroot\n"
                     "setup-usec=3120\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (BootedMarker) m = NULL;
  g_assert_true (booted_marker_parse (text, strlen (text), WHAT, &m, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (m->os, ==, "debian");
  g_assert_cmpstr (m->id, ==, "12");
  g_assert_cmpstr (m->sysroot, ==, "/sysroot");
  g_assert_cmpuint (m->setup_usec, ==, 3120);
}

static void
test_duration_is_optional (void)
{
  const char *text = "[booted]\ndeployment=a/1\nsysroot=/sysroot\n";
  g_autoptr (BootedMarker) m = NULL;
  g_assert_true (booted_marker_parse (text, strlen (text), WHAT, &m, NULL));
  g_assert_cmpuint (m->setup_usec, ==, 0);
}

static void
assert_corrupt (const char *text, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BootedMarker) m = NULL;
  g_test_message ("marker \"%s\"", text);
  g_assert_false (booted_marker_parse (text, strlen (text), WHAT, &m, &error));
  g_assert_null (m);
  test_check_parse_error (error, STAGEHAND_ERROR_CORRUPT, WHAT, key);
}

static void
test_refuses_damaged_markers (void)
{
  assert_corrupt ("", NULL);
  assert_corrupt ("not a keyfile", NULL);
  assert_corrupt ("[booted]\nsysroot=/sysroot\n", "deployment");
  assert_corrupt ("[booted]\ndeployment=a/1\n", "sysroot");
  assert_corrupt ("[booted]\ndeployment=a/../1\nsysroot=/sysroot\n", "deployment");
  assert_corrupt ("[booted]\ndeployment=a\nsysroot=/sysroot\n", "deployment");
  assert_corrupt ("[booted]\ndeployment=A/1\nsysroot=/sysroot\n", "deployment");
  assert_corrupt ("[booted]\ndeployment=a/1\nsysroot=sysroot\n", "sysroot");
  assert_corrupt ("[booted]\ndeployment=a/1\nsysroot=/sysroot/../etc\n", "sysroot");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/booted/parses-what-the-root-setup-writes",
                   test_parses_what_the_root_setup_writes);
  g_test_add_func ("/booted/duration-is-optional", test_duration_is_optional);
  g_test_add_func ("/booted/refuses-damaged-markers", test_refuses_damaged_markers);
  return g_test_run ();
}

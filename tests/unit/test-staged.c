/* /run/stagehand/staged: the deployment finalize will make the default.
 *
 * finalize reads it at shutdown; a damaged record must be refused with a
 * message that names the file and says how to get rid of it.
 */
#include "config.h"

#include "errors.h"
#include "staged.h"
#include "test-util.h"

#include <string.h>

#define WHAT "/run/stagehand/staged"

static void
assert_corrupt (const char *text, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (DeploymentRecord) r = NULL;
  g_assert_false (
      deployment_record_parse (&staged_record_format, text, strlen (text), WHAT, &r, &error));
  g_assert_null (r);
  test_check_parse_error (error, STAGEHAND_ERROR_CORRUPT, WHAT, key);
  if (strstr (error->message, "stagehand unstage") == NULL)
    test_report_failure ("\"%s\" does not say how to remove the record", error->message);
}

static void
test_round_trips_through_keyfile (void)
{
  DeploymentRecord record
      = { .os = (char *)"fedora", .id = (char *)"12", .staged_time = 1714550400 };
  gsize len = 0;
  g_autofree char *data = deployment_record_to_data (&staged_record_format, &record, &len);
  g_assert_cmpuint (len, ==, strlen (data));

  g_autoptr (GError) error = NULL;
  g_autoptr (DeploymentRecord) back = NULL;
  g_assert_true (deployment_record_parse (&staged_record_format, data, len, WHAT, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (back->os, ==, "fedora");
  g_assert_cmpstr (back->id, ==, "12");
  g_assert_cmpint (back->staged_time, ==, 1714550400);
}

static void
test_hand_written_record_is_read (void)
{
  static const char text[] = "# written by hand\n"
                             "[staged]\n"
                             "os = debian\n"
                             "id=7\n"
                             "staged-at=0\n"
                             "future-key=ignored\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (DeploymentRecord) r = NULL;
  g_assert_true (
      deployment_record_parse (&staged_record_format, text, strlen (text), WHAT, &r, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (r->os, ==, "debian");
  g_assert_cmpstr (r->id, ==, "7");
}

static void
test_missing_os_is_corrupt (void)
{
  assert_corrupt ("[staged]\nid=3\nstaged-at=1\n", "os");
}

static void
test_missing_id_is_corrupt (void)
{
  assert_corrupt ("[staged]\nos=fedora\nstaged-at=1\n", "id");
}

static void
test_bad_os_name_is_corrupt (void)
{
  assert_corrupt ("[staged]\nos=../../etc\nid=3\n", "os");
  assert_corrupt ("[staged]\nos=Fedora\nid=3\n", "os");
}

static void
test_bad_id_is_corrupt (void)
{
  assert_corrupt ("[staged]\nos=fedora\nid=../3\n", "id");
  assert_corrupt ("[staged]\nos=fedora\nid=0\n", "id");
  assert_corrupt ("[staged]\nos=fedora\nid=three\n", "id");
}

static void
test_garbage_is_corrupt (void)
{
  assert_corrupt ("garbage without structure\n", NULL);
  assert_corrupt ("[staged\nos=fedora\n", NULL);
  assert_corrupt ("", NULL);
  assert_corrupt ("[other]\nos=fedora\nid=3\n", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/staged/round-trips-through-keyfile", test_round_trips_through_keyfile);
  g_test_add_func ("/staged/hand-written-record-is-read", test_hand_written_record_is_read);
  g_test_add_func ("/staged/missing-os-is-corrupt", test_missing_os_is_corrupt);
  g_test_add_func ("/staged/missing-id-is-corrupt", test_missing_id_is_corrupt);
  g_test_add_func ("/staged/bad-os-name-is-corrupt", test_bad_os_name_is_corrupt);
  g_test_add_func ("/staged/bad-id-is-corrupt", test_bad_id_is_corrupt);
  g_test_add_func ("/staged/garbage-is-corrupt", test_garbage_is_corrupt);

  return g_test_run ();
}

/* <sysroot>/stagehand/finalize-result: what the last finalize did.
 *
 * The next boot reports it, so it must come back exactly as written (steps
 * in order, multi-line error messages intact), and a damaged file must be
 * refused as corrupt rather than read as a success.
 */
#include "config.h"

#include "errors.h"
#include "test-util.h"
#include "verdict.h"

#include <string.h>

#define WHAT "stagehand/finalize-result"

static Verdict *
parse_ok (const char *data, gsize len)
{
  g_autoptr (GError) error = NULL;
  Verdict *v = NULL;
  g_assert_true (verdict_parse (data, len, WHAT, &v, &error));
  g_assert_no_error (error);
  g_assert_nonnull (v);
  return v;
}

static Verdict *
round_trip (const Verdict *v)
{
  gsize len = 0;
  g_autofree char *data = verdict_to_data (v, &len);
  g_assert_cmpuint (len, ==, strlen (data));
  return parse_ok (data, len);
}

static void
assert_corrupt (const char *text, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Verdict) v = NULL;
  g_assert_false (verdict_parse (text, strlen (text), WHAT, &v, &error));
  g_assert_null (v);
  test_check_parse_error (error, STAGEHAND_ERROR_CORRUPT, WHAT, key);
}

static void
test_success_round_trips_with_steps_in_order (void)
{
  g_autoptr (Verdict) v = verdict_new ();
  v->result = g_strdup (VERDICT_SUCCESS);
  v->deployment = g_strdup ("fedora/3");
  v->started = 1714550400000000;
  v->finished = 1714550400250000;
  v->boot_id = g_strdup ("0123456789abcdef0123456789abcdef");
  v->switched = g_strdup ("atomic: renameat2(RENAME_EXCHANGE) of loader/entries");
  /* Not alphabetical: the order is the order the steps ran in. */
  verdict_add_step (v, "lock", 120);
  verdict_add_step (v, "write-entries", 48000);
  verdict_add_step (v, "syncfs", 150000);
  verdict_add_step (v, "swap", 900);
  verdict_add_step (v, "cleanup", G_MAXUINT64);

  g_autoptr (Verdict) back = round_trip (v);
  g_assert_cmpstr (back->result, ==, VERDICT_SUCCESS);
  g_assert_cmpstr (back->deployment, ==, "fedora/3");
  g_assert_null (back->step);
  g_assert_null (back->error);
  g_assert_cmpint (back->started, ==, 1714550400000000);
  g_assert_cmpint (back->finished, ==, 1714550400250000);
  g_assert_cmpstr (back->boot_id, ==, "0123456789abcdef0123456789abcdef");
  g_assert_cmpstr (back->switched, ==, "atomic: renameat2(RENAME_EXCHANGE) of loader/entries");
  g_assert_false (back->reported);
  g_assert_cmpuint (back->steps->len, ==, 5);
  static const char *const names[] = { "lock", "write-entries", "syncfs", "swap", "cleanup" };
  static const guint64 usecs[] = { 120, 48000, 150000, 900, G_MAXUINT64 };
  for (guint i = 0; i < 5; i++)
    {
      VerdictStep *s = back->steps->pdata[i];
      g_assert_cmpstr (s->name, ==, names[i]);
      g_assert_cmpuint (s->usec, ==, usecs[i]);
    }
}

static void
test_failure_keeps_step_and_multi_line_error (void)
{
  g_autoptr (Verdict) v = verdict_new ();
  v->result = g_strdup (VERDICT_FAILED);
  v->deployment = g_strdup ("debian/12");
  v->step = g_strdup ("swap");
  v->error = g_strdup ("renaming loader.tmp to loader: Read-only file system\n"
                       "hint: is /boot mounted read-only?\t[=;#]");
  v->reported = TRUE;

  g_autoptr (Verdict) back = round_trip (v);
  g_assert_cmpstr (back->result, ==, VERDICT_FAILED);
  g_assert_cmpstr (back->deployment, ==, "debian/12");
  g_assert_cmpstr (back->step, ==, "swap");
  g_assert_cmpstr (back->error, ==, v->error);
  g_assert_true (back->reported);
  g_assert_cmpuint (back->steps->len, ==, 0);
}

static void
test_not_attempted_round_trips (void)
{
  g_autoptr (Verdict) v = verdict_new ();
  v->result = g_strdup (VERDICT_NOT_ATTEMPTED);
  g_autoptr (Verdict) back = round_trip (v);
  g_assert_cmpstr (back->result, ==, VERDICT_NOT_ATTEMPTED);
  g_assert_null (back->deployment);
  g_assert_null (back->boot_id);
}

static void
test_missing_result_is_corrupt (void)
{
  assert_corrupt ("[finalize]\ndeployment=fedora/3\nstarted=1\n", "result");
  assert_corrupt ("", "result");
}

static void
test_unknown_result_is_corrupt (void)
{
  /* Never read a damaged verdict as anything, least of all as success. */
  assert_corrupt ("[finalize]\nresult=succes\n", "result");
  assert_corrupt ("[finalize]\nresult=SUCCESS\n", "result");
  assert_corrupt ("[finalize]\nresult=\n", "result");
}

static void
test_garbage_is_corrupt (void)
{
  assert_corrupt ("\x7f"
                  "ELF\x02\x01\x01",
                  NULL);
  assert_corrupt ("result=success\n", NULL); /* a key outside any group */
  assert_corrupt ("[finalize\nresult=success\n", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/verdict/success-round-trips-with-steps-in-order",
                   test_success_round_trips_with_steps_in_order);
  g_test_add_func ("/verdict/failure-keeps-step-and-multi-line-error",
                   test_failure_keeps_step_and_multi_line_error);
  g_test_add_func ("/verdict/not-attempted-round-trips", test_not_attempted_round_trips);
  g_test_add_func ("/verdict/missing-result-is-corrupt", test_missing_result_is_corrupt);
  g_test_add_func ("/verdict/unknown-result-is-corrupt", test_unknown_result_is_corrupt);
  g_test_add_func ("/verdict/garbage-is-corrupt", test_garbage_is_corrupt);

  return g_test_run ();
}

/* <sysroot>/stagehand/staged-pending: the marker that lets the next boot
 * report a staged deployment whose finalize never ran.
 *
 * Its format round-trips and a damaged one is refused naming the file; and
 * what a marker means at boot depends on the staged record and the last
 * verdict, which the table below spells out.
 */
#include "config.h"

#include "errors.h"
#include "pending.h"
#include "test-util.h"

#include <string.h>

#define WHAT "/sysroot/stagehand/staged-pending"
#define STAGED_USEC G_GINT64_CONSTANT (1714550400000000)

static void
assert_corrupt (const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (DeploymentRecord) m = NULL;
  g_assert_false (
      deployment_record_parse (&pending_marker_format, text, strlen (text), WHAT, &m, &error));
  g_assert_null (m);
  test_check_parse_error (error, STAGEHAND_ERROR_CORRUPT, WHAT, NULL);
}

static void
test_round_trips_through_keyfile (void)
{
  DeploymentRecord marker
      = { .os = (char *)"fedora", .id = (char *)"12", .staged_time = STAGED_USEC };
  gsize len = 0;
  g_autofree char *data = deployment_record_to_data (&pending_marker_format, &marker, &len);
  g_assert_cmpuint (len, ==, strlen (data));

  g_autoptr (GError) error = NULL;
  g_autoptr (DeploymentRecord) back = NULL;
  g_assert_true (deployment_record_parse (&pending_marker_format, data, len, WHAT, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (back->os, ==, "fedora");
  g_assert_cmpstr (back->id, ==, "12");
  g_assert_cmpint (back->staged_time, ==, STAGED_USEC);
  g_autofree char *name = deployment_record_name (back);
  g_assert_cmpstr (name, ==, "fedora/12");
}

static void
test_damaged_marker_is_corrupt (void)
{
  assert_corrupt ("garbage without structure\n");
  assert_corrupt ("");
  assert_corrupt ("[staged-pending]\nid=3\n");
  assert_corrupt ("[staged-pending]\nos=fedora\n");
  assert_corrupt ("[staged-pending]\nos=../../etc\nid=3\n");
  assert_corrupt ("[staged-pending]\nos=fedora\nid=0\n");
  /* The staged record's group is not the marker's. */
  assert_corrupt ("[staged]\nos=fedora\nid=3\n");
}

static Verdict *
verdict_of (const char *result, const char *deployment, gint64 started)
{
  Verdict *v = verdict_new ();
  v->result = g_strdup (result);
  v->deployment = g_strdup (deployment);
  v->started = started;
  v->finished = started + 1000;
  return v;
}

static void
test_assess (void)
{
  DeploymentRecord marker
      = { .os = (char *)"fedora", .id = (char *)"12", .staged_time = STAGED_USEC };
  g_autoptr (Verdict) finalized = verdict_of (VERDICT_SUCCESS, "fedora/12", STAGED_USEC + 5);
  g_autoptr (Verdict) failed = verdict_of (VERDICT_FAILED, "fedora/12", STAGED_USEC + 5);
  g_autoptr (Verdict) not_attempted
      = verdict_of (VERDICT_NOT_ATTEMPTED, "fedora/12", STAGED_USEC + 5);
  g_autoptr (Verdict) other = verdict_of (VERDICT_SUCCESS, "fedora/11", STAGED_USEC + 5);
  /* An earlier attempt that had the same name (its deployment was cleaned
   * up and the id given again). */
  g_autoptr (Verdict) earlier = verdict_of (VERDICT_FAILED, "fedora/12", STAGED_USEC - 60000000);
  g_autoptr (Verdict) no_name = verdict_of (VERDICT_NOT_ATTEMPTED, NULL, STAGED_USEC + 5);

  const struct
  {
    const char *what;
    const DeploymentRecord *marker;
    gboolean staged_record;
    const Verdict *verdict;
    const char *booted;
    PendingState expected;
  } cases[] = {
    { "no marker", NULL, FALSE, NULL, NULL, PENDING_NONE },
    { "no marker, a verdict", NULL, FALSE, finalized, NULL, PENDING_NONE },
    { "no marker, staged", NULL, TRUE, NULL, NULL, PENDING_NONE },
    { "staged in this boot", &marker, TRUE, NULL, NULL, PENDING_STAGED },
    { "staged in this boot, an old verdict", &marker, TRUE, other, NULL, PENDING_STAGED },
    { "staged in this boot, finalize failed", &marker, TRUE, failed, NULL, PENDING_STAGED },
    { "lost, no verdict at all", &marker, FALSE, NULL, NULL, PENDING_LOST },
    { "lost, the verdict is of another deployment", &marker, FALSE, other, NULL, PENDING_LOST },
    { "lost, the verdict names no deployment", &marker, FALSE, no_name, NULL, PENDING_LOST },
    { "lost, the verdict is of an earlier one of that name", &marker, FALSE, earlier, NULL,
      PENDING_LOST },
    { "finalized (killed before the marker went)", &marker, FALSE, finalized, NULL,
      PENDING_FINALIZED },
    { "finalize failed (killed before the marker went)", &marker, FALSE, failed, NULL,
      PENDING_FINALIZED },
    { "finalize not attempted", &marker, FALSE, not_attempted, NULL, PENDING_FINALIZED },
    /* Booted: finalized, though no verdict (a read-only state directory)
     * says so. */
    { "booted, no verdict", &marker, FALSE, NULL, "fedora/12", PENDING_FINALIZED },
    { "booted, an earlier verdict of its name", &marker, FALSE, earlier, "fedora/12",
      PENDING_FINALIZED },
    { "another one booted, no verdict", &marker, FALSE, NULL, "fedora/11", PENDING_LOST },
    { "booted, staged again in this boot", &marker, TRUE, NULL, "fedora/12", PENDING_STAGED },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      PendingState got = pending_marker_assess (cases[i].marker, cases[i].staged_record,
                                                cases[i].verdict, cases[i].booted);
      if (got != cases[i].expected)
        g_test_fail_printf ("%s: got state %d, expected %d", cases[i].what, got, cases[i].expected);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pending/round-trips-through-keyfile", test_round_trips_through_keyfile);
  g_test_add_func ("/pending/damaged-marker-is-corrupt", test_damaged_marker_is_corrupt);
  g_test_add_func ("/pending/assess-by-staged-record-and-verdict", test_assess);

  return g_test_run ();
}

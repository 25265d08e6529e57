/* UAPI.10 version comparison (version_compare() in bls.c), as systemd-boot
 * orders entries of one sort key by it: the newest version first, so a
 * wrong comparison makes the wrong deployment the default. The menu order
 * itself is test-bls.c's.
 */
#include "config.h"

#include "bls.h"

/* --- UAPI.10 version comparison --------------------------------------- */

/* Non-fatal, so one wrong pair does not hide the others. */
static void
assert_older (const char *a, const char *b)
{
  int ab = version_compare (a, b), ba = version_compare (b, a);
  if (ab >= 0 || ba <= 0)
    {
      g_autofree char *msg
          = g_strdup_printf ("expected \"%s\" older than \"%s\": compare gave %d, reversed %d",
                             a ? a : "(null)", b ? b : "(null)", ab, ba);
      g_test_message ("FAIL: %s", msg);
      g_test_fail_printf ("%s", msg);
    }
}

static void
assert_same (const char *a, const char *b)
{
  int ab = version_compare (a, b), ba = version_compare (b, a);
  if (ab != 0 || ba != 0)
    {
      g_autofree char *msg = g_strdup_printf (
          "expected \"%s\" the same as \"%s\": compare gave %d, reversed %d", a, b, ab, ba);
      g_test_message ("FAIL: %s", msg);
      g_test_fail_printf ("%s", msg);
    }
}

static void
test_version_pre_release_is_older_than_release (void)
{
  assert_older ("1.0~rc1", "1.0");
  assert_older ("1.0~rc1", "1.0~rc2");
  assert_older ("123~rc1-99.99", "123-45.67.89");
  assert_older ("1~", "1");
}

static void
test_version_more_segments_is_newer (void)
{
  assert_older ("1.0", "1.0.1");
  assert_older ("123.45-67", "123.45-67.89");
  assert_older ("1", "1a");
}

static void
test_version_release_separator_is_older_than_point (void)
{
  assert_older ("1.0-1", "1.0.1");
  assert_older ("123-99.99", "123.45-67.89");
}

static void
test_version_patch_release_is_newer_than_release (void)
{
  assert_older ("1.0", "1.0^1");
  assert_older ("123-3.1", "123^patch1");
  assert_older ("123^45-67.89", "123.45-67.89");
}

static void
test_version_point_release_is_older_than_letters (void)
{
  /* "." is the last prefix in the "~" < "-" < "^" < "." chain: a segment
   * with no prefix is newest (systemd test-strverscmp.c). */
  assert_older ("123.aa2-67.89", "123aa2-67.89");
  assert_older ("123.1-1", "123a-1");
}

static void
test_version_letters_compare_alphabetically (void)
{
  assert_older ("a", "b");
  assert_older ("ab", "abb");
  assert_older ("abb", "abc");
  assert_older ("123.aa2-67.89", "123.ab2-67.89");
}

static void
test_version_numbers_compare_by_value (void)
{
  assert_older ("9", "10");
  assert_older ("1.9", "1.10");
  assert_older ("6.8.0", "6.10.0");
  assert_older ("123.45-67.9", "123.45-67.89");
}

static void
test_version_leading_zeros_are_ignored (void)
{
  assert_same ("0010", "10");
  assert_same ("11", "011");
  assert_same ("1.02", "1.2");
}

static void
test_version_numbers_are_newer_than_letters (void)
{
  assert_older ("1.a", "1.1");
  assert_older ("123.45-67.ab", "123.45-67.89");
  assert_older ("abc", "0001");
}

static void
test_version_other_characters_only_separate (void)
{
  assert_same ("123_aa2-67.89", "123aa+2-67.89");
  assert_same ("1.0", "1.0");
}

static void
test_version_null_sorts_before_anything (void)
{
  g_assert_cmpint (version_compare (NULL, NULL), ==, 0);
  assert_older (NULL, "0");
  assert_older (NULL, "~1");
  assert_older (NULL, "1.0");
}

/* systemd's test-strverscmp.c list, oldest first. */
static const char *const uapi_ordered[] = {
  "~1",    "",        "ab",         "abb",   "abc",     "0001",    "002",    "12",
  "122",   "122.9",   "123~rc1",    "123",   "123-a",   "123-a.1", "123-a1", "123-a1.1",
  "123-3", "123-3.1", "123^patch1", "123^1", "123.a-1", "123.1-1", "123a-1", "124",
};

static void
test_version_follows_the_uapi_order (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (uapi_ordered); i++)
    for (guint j = i + 1; j < G_N_ELEMENTS (uapi_ordered); j++)
      {
        int r = version_compare (uapi_ordered[i], uapi_ordered[j]);
        if (r >= 0)
          {
            g_test_message ("FAIL: version_compare (\"%s\", \"%s\") = %d, expected < 0",
                            uapi_ordered[i], uapi_ordered[j], r);
            g_test_fail_printf ("version_compare (\"%s\", \"%s\") = %d, expected < 0",
                                uapi_ordered[i], uapi_ordered[j], r);
          }
      }
}

static void
test_version_compare_is_antisymmetric (void)
{
  static const char *const extra[] = {
    "1.0~rc1",
    "1.0",
    "1.0.1",
    "1.0-1",
    "1.0^1",
    "a",
    "b",
    "9",
    "10",
    "0010",
    "6.8.9-300.fc40.x86_64",
    "6.10.0-0.rc1.fc41",
    "40.20240501.0",
    "3.x",
    "2.x",
    "1",
    "1_0",
  };
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  for (guint i = 0; i < G_N_ELEMENTS (uapi_ordered); i++)
    g_ptr_array_add (all, (gpointer)uapi_ordered[i]);
  for (guint i = 0; i < G_N_ELEMENTS (extra); i++)
    g_ptr_array_add (all, (gpointer)extra[i]);

  for (guint i = 0; i < all->len; i++)
    {
      const char *a = all->pdata[i];
      g_assert_cmpint (version_compare (a, a), ==, 0);
      for (guint j = 0; j < all->len; j++)
        {
          const char *b = all->pdata[j];
          int ab = version_compare (a, b), ba = version_compare (b, a);
          if ((ab > 0) - (ab < 0) != -((ba > 0) - (ba < 0)))
            g_test_fail_printf ("version_compare (\"%s\", \"%s\") = %d but (\"%s\", \"%s\") = %d",
                                a, b, ab, b, a, ba);
        }
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/bls/version/pre-release-is-older-than-release",
                   test_version_pre_release_is_older_than_release);
  g_test_add_func ("/bls/version/more-segments-is-newer", test_version_more_segments_is_newer);
  g_test_add_func ("/bls/version/release-separator-is-older-than-point",
                   test_version_release_separator_is_older_than_point);
  g_test_add_func ("/bls/version/patch-release-is-newer-than-release",
                   test_version_patch_release_is_newer_than_release);
  g_test_add_func ("/bls/version/point-release-is-older-than-letters",
                   test_version_point_release_is_older_than_letters);
  g_test_add_func ("/bls/version/letters-compare-alphabetically",
                   test_version_letters_compare_alphabetically);
  g_test_add_func ("/bls/version/numbers-compare-by-value", test_version_numbers_compare_by_value);
  g_test_add_func ("/bls/version/leading-zeros-are-ignored",
                   test_version_leading_zeros_are_ignored);
  g_test_add_func ("/bls/version/numbers-are-newer-than-letters",
                   test_version_numbers_are_newer_than_letters);
  g_test_add_func ("/bls/version/other-characters-only-separate",
                   test_version_other_characters_only_separate);
  g_test_add_func ("/bls/version/null-sorts-before-anything",
                   test_version_null_sorts_before_anything);
  g_test_add_func ("/bls/version/follows-the-uapi-order", test_version_follows_the_uapi_order);
  g_test_add_func ("/bls/version/compare-is-antisymmetric", test_version_compare_is_antisymmetric);

  return g_test_run ();
}

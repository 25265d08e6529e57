/* The fd-relative helpers' naming rules. */
#include "config.h"

#include "fsutil.h"

#include <limits.h>
#include <string.h>

/* Another tool's file in the loader directory may have a name of up to 255
 * bytes; the temp name for its copy must be a valid name too (issue 14). */
static void
test_temp_name_fits_name_max (void)
{
  for (gsize len = 1; len <= NAME_MAX; len++)
    {
      g_autofree char *prefix = g_strnfill (len, 'a');
      g_autofree char *tmp = fs_temp_name (prefix);
      g_assert_cmpuint (strlen (tmp), <=, NAME_MAX);
      g_assert_true (fs_is_temp_name (tmp));
      g_assert_true (g_str_has_prefix (tmp, ".a"));
    }
  g_autofree char *short_name = fs_temp_name ("loader");
  g_assert_cmpuint (strlen (short_name), ==, strlen (".loader-tmp-XXXXXX"));
  g_assert_true (g_str_has_prefix (short_name, ".loader-tmp-"));
}

static void
test_temp_name_cuts_at_a_character_boundary (void)
{
  /* 120 two-byte characters (240 bytes) and more: the cut must not leave
   * half a character, which vfat refuses. */
  for (guint extra = 0; extra < 4; extra++)
    {
      g_autoptr (GString) prefix = g_string_new (NULL);
      for (guint i = 0; i < 120 + extra; i++)
        g_string_append (prefix, "\xc3\xa9"); /* é */
      g_autofree char *tmp = fs_temp_name (prefix->str);
      g_assert_cmpuint (strlen (tmp), <=, NAME_MAX);
      g_assert_true (g_utf8_validate (tmp, -1, NULL));
    }
}

static void
test_temp_name_of_is_exact (void)
{
  g_autofree char *tmp = fs_temp_name ("loader");
  g_assert_true (fs_is_temp_name_of (tmp, "loader"));
  g_assert_false (fs_is_temp_name_of (tmp, "load"));
  const char *others[] = { ".loader-tmp-abc",    ".loader-tmp-abcdefg", ".loader-old-tmp-abcdef",
                           ".loader-tmp-abc.ef", "loader-tmp-abcdef",   ".loaderx-tmp-abcdef" };
  for (guint i = 0; i < G_N_ELEMENTS (others); i++)
    g_assert_false (fs_is_temp_name_of (others[i], "loader"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fsutil/temp-name-fits-name-max", test_temp_name_fits_name_max);
  g_test_add_func ("/fsutil/temp-name-cuts-at-a-character-boundary",
                   test_temp_name_cuts_at_a_character_boundary);
  g_test_add_func ("/fsutil/temp-name-of-is-exact", test_temp_name_of_is_exact);
  return g_test_run ();
}

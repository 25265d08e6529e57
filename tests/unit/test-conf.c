/* stagehand.conf: defaults that command-line flags override.
 *
 * A bad value is the operator's input, so it is STAGEHAND_ERROR_INVALID and
 * the message names the file, the key and the value; nothing bad is
 * silently replaced by a default.
 */
#include "config.h"

#include "conf.h"
#include "errors.h"
#include "test-util.h"

#include <string.h>

#define WHAT "/stagehand/stagehand.conf"

static Config *
parse_ok (const char *text)
{
  g_autoptr (GError) error = NULL;
  Config *c = NULL;
  g_assert_true (config_parse (text, strlen (text), WHAT, &c, &error));
  g_assert_no_error (error);
  g_assert_nonnull (c);
  return c;
}

static void
assert_invalid (const char *text, const char *key, const char *value)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Config) c = NULL;
  g_assert_false (config_parse (text, strlen (text), WHAT, &c, &error));
  g_assert_null (c);
  test_check_parse_error (error, STAGEHAND_ERROR_INVALID, WHAT, key);
  if (value && strstr (error->message, value) == NULL)
    test_report_failure ("\"%s\" does not show the value %s", error->message, value);
}

static void
assert_defaults (const Config *c)
{
  g_assert_cmpuint (c->retain, ==, 2);
  g_assert_cmpuint (c->lock_timeout, ==, 60);
  /* Must fit in the finalize unit's stop timeout (90 s by default). */
  g_assert_cmpuint (c->finalize_lock_timeout, ==, 20);
  g_assert_nonnull (c->kargs);
  g_assert_cmpuint (g_strv_length (c->kargs), ==, 0);
  /* Unset: the boot loader decides (3 tries with systemd-boot, else off). */
  g_assert_cmpint (c->boot_counting_tries, ==, CONFIG_TRIES_UNSET);
}

static void
test_defaults (void)
{
  g_autoptr (Config) c = config_new_default ();
  assert_defaults (c);
}

static void
test_empty_file_gives_defaults (void)
{
  g_autoptr (Config) c = parse_ok ("");
  assert_defaults (c);

  g_autoptr (Config) only_comments = parse_ok ("# nothing here\n\n[stagehand]\n# retain=9\n");
  g_assert_cmpuint (only_comments->retain, ==, 2);
}

static void
test_every_key_is_read (void)
{
  g_autoptr (Config) c = parse_ok ("[stagehand]\n"
                                   "retain=5\n"
                                   "lock-timeout = 0\n"
                                   "finalize-lock-timeout=3600\n"
                                   "kargs=quiet splash dyndbg=\"file a.c +p\"\n");
  g_assert_cmpuint (c->retain, ==, 5);
  g_assert_cmpuint (c->lock_timeout, ==, 0);
  g_assert_cmpuint (c->finalize_lock_timeout, ==, 3600);
  g_assert_cmpuint (g_strv_length (c->kargs), ==, 3);
  g_assert_cmpstr (c->kargs[0], ==, "quiet");
  g_assert_cmpstr (c->kargs[1], ==, "splash");
  g_assert_cmpstr (c->kargs[2], ==, "dyndbg=\"file a.c +p\"");
}

static void
test_limits_are_accepted (void)
{
  g_autoptr (Config) low = parse_ok ("[stagehand]\nretain=1\nlock-timeout=0\n");
  g_assert_cmpuint (low->retain, ==, 1);
  g_autoptr (Config) high = parse_ok ("[stagehand]\nretain=64\nlock-timeout=86400\n");
  g_assert_cmpuint (high->retain, ==, 64);
  g_assert_cmpuint (high->lock_timeout, ==, 86400);
}

static void
test_boot_counting_tries_is_read (void)
{
  g_autoptr (Config) off = parse_ok ("[stagehand]\nboot-counting-tries=0\n");
  g_assert_cmpint (off->boot_counting_tries, ==, 0);
  g_autoptr (Config) five = parse_ok ("[stagehand]\nboot-counting-tries=5\n");
  g_assert_cmpint (five->boot_counting_tries, ==, 5);
  g_autoptr (Config) max = parse_ok ("[stagehand]\nboot-counting-tries=100\n");
  g_assert_cmpint (max->boot_counting_tries, ==, CONFIG_TRIES_MAX);
  assert_invalid ("[stagehand]\nboot-counting-tries=101\n", "boot-counting-tries", "101");
  assert_invalid ("[stagehand]\nboot-counting-tries=-1\n", "boot-counting-tries", "-1");
  assert_invalid ("[stagehand]\nboot-counting-tries=yes\n", "boot-counting-tries", "yes");
}

static void
test_unknown_keys_and_groups_are_ignored (void)
{
  g_autoptr (Config) c = parse_ok ("[stagehand]\n"
                                   "retain=3\n"
                                   "future-option=yes\n"
                                   "[other]\n"
                                   "retain=not-a-number\n");
  g_assert_cmpuint (c->retain, ==, 3);
}

static void
test_bad_numbers_are_invalid (void)
{
  static const struct
  {
    const char *key, *value;
  } bad[] = {
    { "retain", "0" }, /* keeping no deployment would delete the booted one */
    { "retain", "65" },
    { "retain", "two" },
    { "retain", "-1" },
    { "retain", "2.5" },
    { "retain", "0x10" },
    { "retain", "99999999999999999999" },
    { "lock-timeout", "86401" },
    { "lock-timeout", "-5" },
    { "lock-timeout", "1m" },
    { "finalize-lock-timeout", "3601" },
    { "finalize-lock-timeout", "forever" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *text = g_strdup_printf ("[stagehand]\n%s=%s\n", bad[i].key, bad[i].value);
      assert_invalid (text, bad[i].key, bad[i].value);
    }
}

static void
test_empty_number_is_invalid (void)
{
  assert_invalid ("[stagehand]\nretain=\n", "retain", NULL);
}

static void
test_bad_kargs_are_invalid (void)
{
  assert_invalid ("[stagehand]\nkargs=quiet stagehand=/stagehand/deploy/x/1\n", "kargs",
                  "stagehand=/stagehand/deploy/x/1");
  assert_invalid ("[stagehand]\nkargs=quiet foo=\"bar\n", "kargs", NULL);
  /* "\t" is the keyfile escape for a tab; inside quotes it stays in the karg. */
  assert_invalid ("[stagehand]\nkargs=quiet foo=\"a\\tb\"\n", "kargs", NULL);
}

static void
test_garbage_is_invalid (void)
{
  assert_invalid ("retain=3\n", NULL, NULL); /* outside any group */
  assert_invalid ("this is not a keyfile\n", NULL, NULL);
  assert_invalid ("[stagehand\nretain=3\n", NULL, NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/conf/defaults", test_defaults);
  g_test_add_func ("/conf/empty-file-gives-defaults", test_empty_file_gives_defaults);
  g_test_add_func ("/conf/every-key-is-read", test_every_key_is_read);
  g_test_add_func ("/conf/limits-are-accepted", test_limits_are_accepted);
  g_test_add_func ("/conf/boot-counting-tries-is-read", test_boot_counting_tries_is_read);
  g_test_add_func ("/conf/unknown-keys-and-groups-are-ignored",
                   test_unknown_keys_and_groups_are_ignored);
  g_test_add_func ("/conf/bad-numbers-are-invalid", test_bad_numbers_are_invalid);
  g_test_add_func ("/conf/empty-number-is-invalid", test_empty_number_is_invalid);
  g_test_add_func ("/conf/bad-kargs-are-invalid", test_bad_kargs_are_invalid);
  g_test_add_func ("/conf/garbage-is-invalid", test_garbage_is_invalid);

  return g_test_run ();
}

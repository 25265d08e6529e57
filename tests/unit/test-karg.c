/* Kernel arguments: what --karg and stagehand.conf may carry into a boot
 * entry's options line, how an options line splits, and how inherited
 * arguments are amended.
 */
#include "config.h"

#include "errors.h"
#include "karg.h"

#include <string.h>

static void
assert_strv_equal (char **actual, const char *const *expected)
{
  g_autofree char *a = g_strjoinv ("|", actual);
  g_autofree char *e = g_strjoinv ("|", (char **)expected);
  g_assert_cmpstr (a, ==, e);
  g_assert_cmpuint (g_strv_length (actual), ==, g_strv_length ((char **)expected));
}

static void
assert_refused (const char *karg, const char *message_part)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *shown = g_strescape (karg, NULL);
  g_test_message ("karg \"%s\"", shown);
  if (karg_validate (karg, &error))
    {
      g_test_fail_printf ("karg \"%s\" was accepted", shown);
      return;
    }
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  if (strstr (error->message, message_part) == NULL)
    g_test_fail_printf ("karg \"%s\": message \"%s\" does not say \"%s\"", shown, error->message,
                        message_part);
}

static void
test_plain_and_key_value_args_are_accepted (void)
{
  static const char *const good[] = {
    "quiet",
    "rw",
    "root=UUID=0f8e1a2b-1111-2222-3333-444455556666",
    "console=ttyS0,115200n8",
    "rd.luks.options=discard",
    "systemd.unit=multi-user.target",
    "module.param=1",
    "init=/usr/lib/systemd/systemd",
    "stagehandx=1",      /* only stagehand= itself is reserved */
    "stagehand.debug=1", /* a different key */
    "caf\xc3\xa9=1",     /* bytes above 0x7f are not control characters */
  };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;
      g_test_message ("karg \"%s\"", good[i]);
      g_assert_true (karg_validate (good[i], &error));
      g_assert_no_error (error);
    }
}

static void
test_quoted_value_with_spaces_is_accepted (void)
{
  static const char *const good[] = {
    "dyndbg=\"file drivers/usb/* +p\"",
    "\"quoted whole argument\"",
    "acpi_osi=\"!Windows 2012\"",
    "foo=\"\"",
  };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;
      g_test_message ("karg %s", good[i]);
      g_assert_true (karg_validate (good[i], &error));
      g_assert_no_error (error);
    }
}

static void
test_empty_karg_is_refused (void)
{
  assert_refused ("", "empty");
  g_autoptr (GError) error = NULL;
  g_assert_false (karg_validate (NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
}

static void
test_newline_is_refused_as_line_injection (void)
{
  /* The options line is written verbatim: a newline would add an initrd
   * (or any other) line to the entry. */
  assert_refused ("quiet\ninitrd /evil.img", "inject lines");
  assert_refused ("quiet\r\ninitrd /evil.img", "inject lines");
  assert_refused ("\n", "inject lines");
}

static void
test_tab_is_refused_as_line_injection (void)
{
  assert_refused ("quiet\tsplash", "inject lines");
}

static void
test_delete_is_refused_as_line_injection (void)
{
  assert_refused ("quiet\x7f", "inject lines");
}

static void
test_every_other_control_character_is_refused (void)
{
  for (int c = 1; c < 0x20; c++)
    {
      char karg[] = { 'a', '=', (char)c, 'b', '\0' };
      g_autofree char *code = g_strdup_printf ("0x%02x", c);
      assert_refused (karg, "inject lines");
      assert_refused (karg, code);
    }
}

static void
test_unbalanced_quote_is_refused (void)
{
  assert_refused ("foo=\"bar", "unbalanced");
  assert_refused ("\"", "unbalanced");
  assert_refused ("a=\"b\"c\"", "unbalanced");
}

static void
test_space_outside_quotes_is_refused (void)
{
  assert_refused ("quiet splash", "own --karg");
  assert_refused ("foo=\"a b\" bar", "own --karg");
  assert_refused (" quiet", "space");
}

static void
test_reserved_stagehand_karg_is_refused (void)
{
  assert_refused ("stagehand=/stagehand/deploy/fedora/1", "reserved");
  assert_refused ("stagehand=", "reserved");
  assert_refused ("stagehand", "reserved");
}

static void
test_quoted_reserved_stagehand_karg_is_refused (void)
{
  /* The kernel (lib/cmdline.c next_arg) and systemd's /proc/cmdline parser
   * both strip quotes around a whole argument, so this is stagehand= to
   * them: a second, conflicting deployment on the command line. */
  assert_refused ("\"stagehand=/stagehand/deploy/evil/1\"", "reserved");
}

static void
test_split_at_whitespace_outside_quotes (void)
{
  g_auto (GStrv) kargs = kargs_split ("  root=/dev/sda1  foo=\"a b\"\tquiet \"x y\" "
                                      "dyndbg=\"file a.c +p\"  ");
  static const char *const expected[]
      = { "root=/dev/sda1", "foo=\"a b\"", "quiet", "\"x y\"", "dyndbg=\"file a.c +p\"", NULL };
  assert_strv_equal (kargs, expected);
}

static void
test_split_of_empty_options_is_empty (void)
{
  g_auto (GStrv) from_null = kargs_split (NULL);
  g_auto (GStrv) from_empty = kargs_split ("");
  g_auto (GStrv) from_blank = kargs_split (" \t ");
  g_assert_nonnull (from_null);
  g_assert_cmpuint (g_strv_length (from_null), ==, 0);
  g_assert_cmpuint (g_strv_length (from_empty), ==, 0);
  g_assert_cmpuint (g_strv_length (from_blank), ==, 0);
}

static void
test_split_keeps_an_unterminated_quote_to_the_end (void)
{
  g_auto (GStrv) kargs = kargs_split ("a foo=\"b c");
  static const char *const expected[] = { "a", "foo=\"b c", NULL };
  assert_strv_equal (kargs, expected);
}

static void
test_key_is_the_text_before_the_first_equals (void)
{
  g_autofree char *root = karg_key ("root=UUID=abcd");
  g_autofree char *quiet = karg_key ("quiet");
  g_autofree char *empty_value = karg_key ("foo=");
  g_assert_cmpstr (root, ==, "root");
  g_assert_cmpstr (quiet, ==, "quiet");
  g_assert_cmpstr (empty_value, ==, "foo");
}

static void
test_amend_replaces_args_with_the_same_key (void)
{
  static const char *const base[]
      = { "root=/dev/sda1", "console=tty0", "quiet", "console=ttyS0", "rw", NULL };
  static const char *const amend[] = { "console=ttyS1,115200", "debug", NULL };
  g_auto (GStrv) out = kargs_amend ((char **)base, (char **)amend);
  static const char *const expected[]
      = { "root=/dev/sda1", "quiet", "rw", "console=ttyS1,115200", "debug", NULL };
  assert_strv_equal (out, expected);
}

static void
test_amend_replaces_a_flag_with_itself_once (void)
{
  static const char *const base[] = { "quiet", "rw", NULL };
  static const char *const amend[] = { "quiet", NULL };
  g_auto (GStrv) out = kargs_amend ((char **)base, (char **)amend);
  static const char *const expected[] = { "rw", "quiet", NULL };
  assert_strv_equal (out, expected);
}

static void
test_amend_drops_stagehand_karg_of_base (void)
{
  /* The inherited options name the old deployment; the new entry gets its own. */
  static const char *const base[]
      = { "root=LABEL=os", "stagehand=/stagehand/deploy/fedora/3", "quiet", NULL };
  g_auto (GStrv) out = kargs_amend ((char **)base, NULL);
  static const char *const expected[] = { "root=LABEL=os", "quiet", NULL };
  assert_strv_equal (out, expected);
}

static void
test_amend_of_nothing_is_empty (void)
{
  g_auto (GStrv) out = kargs_amend (NULL, NULL);
  g_assert_nonnull (out);
  g_assert_cmpuint (g_strv_length (out), ==, 0);

  static const char *const amend[] = { "quiet", NULL };
  g_auto (GStrv) only_amend = kargs_amend (NULL, (char **)amend);
  assert_strv_equal (only_amend, amend);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/karg/plain-and-key-value-args-are-accepted",
                   test_plain_and_key_value_args_are_accepted);
  g_test_add_func ("/karg/quoted-value-with-spaces-is-accepted",
                   test_quoted_value_with_spaces_is_accepted);
  g_test_add_func ("/karg/empty-karg-is-refused", test_empty_karg_is_refused);
  g_test_add_func ("/karg/newline-is-refused-as-line-injection",
                   test_newline_is_refused_as_line_injection);
  g_test_add_func ("/karg/tab-is-refused-as-line-injection", test_tab_is_refused_as_line_injection);
  g_test_add_func ("/karg/delete-is-refused-as-line-injection",
                   test_delete_is_refused_as_line_injection);
  g_test_add_func ("/karg/every-other-control-character-is-refused",
                   test_every_other_control_character_is_refused);
  g_test_add_func ("/karg/unbalanced-quote-is-refused", test_unbalanced_quote_is_refused);
  g_test_add_func ("/karg/space-outside-quotes-is-refused", test_space_outside_quotes_is_refused);
  g_test_add_func ("/karg/reserved-stagehand-karg-is-refused",
                   test_reserved_stagehand_karg_is_refused);
  g_test_add_func ("/karg/quoted-reserved-stagehand-karg-is-refused",
                   test_quoted_reserved_stagehand_karg_is_refused);
  g_test_add_func ("/karg/split-at-whitespace-outside-quotes",
                   test_split_at_whitespace_outside_quotes);
  g_test_add_func ("/karg/split-of-empty-options-is-empty", test_split_of_empty_options_is_empty);
  g_test_add_func ("/karg/split-keeps-an-unterminated-quote-to-the-end",
                   test_split_keeps_an_unterminated_quote_to_the_end);
  g_test_add_func ("/karg/key-is-the-text-before-the-first-equals",
                   test_key_is_the_text_before_the_first_equals);
  g_test_add_func ("/karg/amend-replaces-args-with-the-same-key",
                   test_amend_replaces_args_with_the_same_key);
  g_test_add_func ("/karg/amend-replaces-a-flag-with-itself-once",
                   test_amend_replaces_a_flag_with_itself_once);
  g_test_add_func ("/karg/amend-drops-stagehand-karg-of-base",
                   test_amend_drops_stagehand_karg_of_base);
  g_test_add_func ("/karg/amend-of-nothing-is-empty", test_amend_of_nothing_is_empty);

  return g_test_run ();
}

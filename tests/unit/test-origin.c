/* <os>/<id>.origin: where a deployment came from and how it boots.
 *
 * Its values become boot entry lines and path components, so a damaged or
 * tampered origin must be refused as corrupt, naming the file and the key,
 * never carried into /boot.
 */
#include "config.h"

#include "errors.h"
#include "origin.h"
#include "test-util.h"

#include <string.h>

#define WHAT "deploy/fedora/3.origin"
#define BOOTCSUM "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

static Origin *
origin_new_full (void)
{
  Origin *o = g_new0 (Origin, 1);
  o->os = g_strdup ("fedora");
  o->id = g_strdup ("3");
  o->image = g_strdup ("/var/cache/updates/fedora-40.tar.zst");
  o->title = g_strdup ("Fedora Linux 40 (Workstation Edition)");
  o->version = g_strdup ("40.20240501.0");
  o->kernel_version = g_strdup ("6.8.9-300.fc40.x86_64");
  o->kernel_path = g_strdup ("usr/lib/modules/6.8.9-300.fc40.x86_64/vmlinuz");
  o->initramfs_path = g_strdup ("usr/lib/modules/6.8.9-300.fc40.x86_64/initramfs.img");
  o->bootcsum = g_strdup (BOOTCSUM);
  const char *const kargs[] = { "root=UUID=1234", "rw", "dyndbg=\"file a.c +p\"", NULL };
  o->kargs = g_strdupv ((char **)kargs);
  o->created = 1714550400;
  return o;
}

/* Valid origin text with @key set to @value (NULL: removed). */
static char *
origin_text_with (const char *key, const char *value)
{
  g_autoptr (Origin) o = origin_new_full ();
  gsize len = 0;
  g_autofree char *data = origin_to_data (o, &len);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &error));
  if (value == NULL)
    g_assert_true (g_key_file_remove_key (kf, "origin", key, &error));
  else
    g_key_file_set_value (kf, "origin", key, value); /* raw: escapes stay escapes */
  g_assert_no_error (error);
  return g_key_file_to_data (kf, NULL, NULL);
}

static void
assert_corrupt (const char *text, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Origin) o = NULL;
  g_assert_false (origin_parse (text, strlen (text), WHAT, &o, &error));
  g_assert_null (o);
  test_check_parse_error (error, STAGEHAND_ERROR_CORRUPT, WHAT, key);
}

/* Valid origin text but for @key set to @value (NULL: removed) is corrupt,
 * and the error names @key. */
static void
assert_corrupt_with (const char *key, const char *value)
{
  g_autofree char *text = origin_text_with (key, value);
  assert_corrupt (text, key);
}

/* @o written and read back; the text's length is what to_data said. */
static Origin *
round_trip (const Origin *o)
{
  gsize len = 0;
  g_autofree char *data = origin_to_data (o, &len);
  g_assert_cmpuint (len, ==, strlen (data));
  g_autoptr (GError) error = NULL;
  Origin *back = NULL;
  g_assert_true (origin_parse (data, len, WHAT, &back, &error));
  g_assert_no_error (error);
  return back;
}

static void
test_round_trips_through_keyfile (void)
{
  g_autoptr (Origin) o = origin_new_full ();
  g_autoptr (Origin) back = round_trip (o);
  g_assert_cmpstr (back->os, ==, o->os);
  g_assert_cmpstr (back->id, ==, o->id);
  g_assert_cmpstr (back->image, ==, o->image);
  g_assert_cmpstr (back->title, ==, o->title);
  g_assert_cmpstr (back->version, ==, o->version);
  g_assert_cmpstr (back->kernel_version, ==, o->kernel_version);
  g_assert_cmpstr (back->kernel_path, ==, o->kernel_path);
  g_assert_cmpstr (back->initramfs_path, ==, o->initramfs_path);
  g_assert_cmpstr (back->bootcsum, ==, o->bootcsum);
  g_assert_cmpuint (g_strv_length (back->kargs), ==, 3);
  g_assert_cmpstr (back->kargs[0], ==, "root=UUID=1234");
  g_assert_cmpstr (back->kargs[1], ==, "rw");
  g_assert_cmpstr (back->kargs[2], ==, "dyndbg=\"file a.c +p\"");
  g_assert_cmpint (back->created, ==, 1714550400);

  /* And writes back to the same text. */
  g_autofree char *data = origin_to_data (o, NULL);
  g_autofree char *again = origin_to_data (back, NULL);
  g_assert_cmpstr (again, ==, data);
}

static void
test_optional_version_and_initramfs_may_be_absent (void)
{
  g_autoptr (Origin) o = origin_new_full ();
  g_clear_pointer (&o->version, g_free);
  g_clear_pointer (&o->initramfs_path, g_free);
  g_strfreev (o->kargs);
  o->kargs = g_new0 (char *, 1);
  g_autoptr (Origin) back = round_trip (o);
  g_assert_null (back->version);
  g_assert_null (back->initramfs_path);
  g_assert_nonnull (back->kargs);
  g_assert_cmpuint (g_strv_length (back->kargs), ==, 0);
}

static void
test_title_with_leading_space_and_unicode_round_trips (void)
{
  g_autoptr (Origin) o = origin_new_full ();
  g_free (o->title);
  o->title = g_strdup ("  Fedora \xe2\x80\x94 #1 = best; [x]");
  g_autoptr (Origin) back = round_trip (o);
  g_assert_cmpstr (back->title, ==, o->title);
}

static void
test_boot_dir_name_is_os_and_bootcsum (void)
{
  g_autoptr (Origin) o = origin_new_full ();
  g_autofree char *name = origin_boot_dir_name (o);
  g_assert_cmpstr (name, ==, "fedora-" BOOTCSUM);
}

static void
test_missing_required_key_is_corrupt (void)
{
  static const char *const required[]
      = { "os", "id", "image", "title", "kernel-version", "kernel", "bootcsum", "kargs" };
  for (guint i = 0; i < G_N_ELEMENTS (required); i++)
    assert_corrupt_with (required[i], NULL);
}

static void
test_bad_bootcsum_is_corrupt (void)
{
  static const char *const bad[] = {
    "5F70BF18A086007016E948B04AED3B82103A36BEA41755B6CDDFAF10ACE3C6EF",  /* upper case */
    "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6e",   /* 63 */
    "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef0", /* 65 */
    "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6eg",  /* not hex */
    "../../../../etc/passwd",
    "",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_corrupt_with ("bootcsum", bad[i]);
}

static void
test_bad_os_name_is_corrupt (void)
{
  static const char *const bad[] = { "Fedora", "../etc", ".", "a/b", "", "-x" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_corrupt_with ("os", bad[i]);
}

static void
test_bad_id_is_corrupt (void)
{
  static const char *const bad[] = { "0", "01", "abc", "1/2", "-1", "1234567890", "", "../1" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_corrupt_with ("id", bad[i]);
}

static void
test_control_character_in_title_is_corrupt (void)
{
  /* "\n" is the keyfile escape for a newline: the title line of the entry
   * would gain a second line. */
  assert_corrupt_with ("title", "Fedora\\nlinux /evil");
  assert_corrupt_with ("title", "Fedora\\t40");
}

static void
test_control_character_in_version_is_corrupt (void)
{
  assert_corrupt_with ("version", "40\\rinitrd /evil");
  assert_corrupt_with ("kernel-version", "6.8\\n9");
}

static void
test_control_character_in_kargs_is_corrupt (void)
{
  assert_corrupt_with ("kargs", "quiet\\ninitrd /evil.img");
}

static void
test_invalid_karg_is_corrupt (void)
{
  /* The origin's kargs go into the entry as they are; the rules of --karg
   * apply, and breaking them here is corruption, not bad user input. */
  assert_corrupt_with ("kargs", "quiet stagehand=/stagehand/deploy/x/1");
  assert_corrupt_with ("kargs", "quiet foo=\"bar");
}

static void
test_garbage_is_corrupt (void)
{
  assert_corrupt ("this is not a keyfile\n", NULL);
  assert_corrupt ("\x01\x02\x03 binary", NULL);
  assert_corrupt ("[origin\nos=fedora\n", NULL);
  /* A keyfile, but not an origin. */
  assert_corrupt ("[something-else]\nos=fedora\n", "os");
  assert_corrupt ("", "os");
}

static void
test_bootcsum_validity (void)
{
  g_assert_true (bootcsum_is_valid (BOOTCSUM));
  g_assert_true (
      bootcsum_is_valid ("0000000000000000000000000000000000000000000000000000000000000000"));
  g_assert_false (bootcsum_is_valid (NULL));
  g_assert_false (bootcsum_is_valid (""));
  g_assert_false (
      bootcsum_is_valid ("5F70BF18A086007016E948B04AED3B82103A36BEA41755B6CDDFAF10ACE3C6EF"));
}

static void
test_deployment_id_validity (void)
{
  static const char *const good[] = { "1", "9", "10", "123456789" };
  static const char *const bad[]
      = { "0", "00", "01", "", "1a", "a", "-1", "+1", " 1", "1234567890" };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    g_assert_true (deployment_id_is_valid (good[i]));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_false (deployment_id_is_valid (bad[i]));
  g_assert_false (deployment_id_is_valid (NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/origin/round-trips-through-keyfile", test_round_trips_through_keyfile);
  g_test_add_func ("/origin/optional-version-and-initramfs-may-be-absent",
                   test_optional_version_and_initramfs_may_be_absent);
  g_test_add_func ("/origin/title-with-leading-space-and-unicode-round-trips",
                   test_title_with_leading_space_and_unicode_round_trips);
  g_test_add_func ("/origin/boot-dir-name-is-os-and-bootcsum",
                   test_boot_dir_name_is_os_and_bootcsum);
  g_test_add_func ("/origin/missing-required-key-is-corrupt", test_missing_required_key_is_corrupt);
  g_test_add_func ("/origin/bad-bootcsum-is-corrupt", test_bad_bootcsum_is_corrupt);
  g_test_add_func ("/origin/bad-os-name-is-corrupt", test_bad_os_name_is_corrupt);
  g_test_add_func ("/origin/bad-id-is-corrupt", test_bad_id_is_corrupt);
  g_test_add_func ("/origin/control-character-in-title-is-corrupt",
                   test_control_character_in_title_is_corrupt);
  g_test_add_func ("/origin/control-character-in-version-is-corrupt",
                   test_control_character_in_version_is_corrupt);
  g_test_add_func ("/origin/control-character-in-kargs-is-corrupt",
                   test_control_character_in_kargs_is_corrupt);
  g_test_add_func ("/origin/invalid-karg-is-corrupt", test_invalid_karg_is_corrupt);
  g_test_add_func ("/origin/garbage-is-corrupt", test_garbage_is_corrupt);
  g_test_add_func ("/origin/bootcsum-validity", test_bootcsum_validity);
  g_test_add_func ("/origin/deployment-id-validity", test_deployment_id_validity);

  return g_test_run ();
}

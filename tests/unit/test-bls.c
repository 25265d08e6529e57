/* Boot Loader Specification type #1 entries: parsing, writing back, the
 * menu order systemd-boot applies and the boot counters in entry names.
 * UAPI.10 version comparison, which the order uses, is test-bls-version.c.
 *
 * The order matters beyond looks: the first entry is the default, so if
 * stagehand's idea of the order differs from the boot loader's, stagehand
 * believes it made one deployment the default while the machine boots
 * another.
 */
#include "config.h"

#include "bls.h"
#include "errors.h"

#include <string.h>

#define FULL_ENTRY                                                                                 \
  "# Written by stagehand\n"                                                                       \
  "title Fedora Linux 40 (Workstation Edition)\n"                                                  \
  "version 40.20240501.0\n"                                                                        \
  "sort-key 00-stagehand\n"                                                                        \
  "machine-id 0123456789abcdef0123456789abcdef\n"                                                  \
  "linux /stagehand/fedora-" BOOTCSUM "/vmlinuz\n"                                                 \
  "initrd /stagehand/fedora-" BOOTCSUM "/initramfs.img\n"                                          \
  "options root=UUID=1234 rw stagehand=/stagehand/deploy/fedora/3 quiet\n"

#define BOOTCSUM "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

static BootEntry *
parse_ok (const char *filename, const char *contents)
{
  g_autoptr (GError) error = NULL;
  BootEntry *entry = NULL;
  g_assert_true (boot_entry_parse (filename, contents, &entry, &error));
  g_assert_no_error (error);
  g_assert_nonnull (entry);
  return entry;
}

static void
assert_corrupt (const char *filename, const char *contents, const char *message_part)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BootEntry) entry = NULL;
  g_assert_false (boot_entry_parse (filename, contents, &entry, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT);
  g_assert_null (entry);
  g_assert_nonnull (strstr (error->message, filename));
  if (strstr (error->message, message_part) == NULL)
    g_test_fail_printf ("message \"%s\" does not say \"%s\"", error->message, message_part);
}

static void
test_parses_a_full_stagehand_entry (void)
{
  g_autoptr (BootEntry) e = parse_ok ("stagehand-fedora-3.conf", FULL_ENTRY);
  g_assert_true (boot_entry_is_ours (e));
  g_assert_cmpstr (e->filename, ==, "stagehand-fedora-3.conf");
  g_assert_cmpstr (e->title, ==, "Fedora Linux 40 (Workstation Edition)");
  g_assert_cmpstr (e->version, ==, "40.20240501.0");
  g_assert_cmpstr (e->sort_key, ==, BOOT_ENTRY_SORT_KEY);
  g_assert_cmpstr (e->machine_id, ==, "0123456789abcdef0123456789abcdef");
  g_assert_cmpstr (e->linux_path, ==, "/stagehand/fedora-" BOOTCSUM "/vmlinuz");
  g_assert_cmpuint (g_strv_length (e->initrds), ==, 1);
  g_assert_cmpstr (e->initrds[0], ==, "/stagehand/fedora-" BOOTCSUM "/initramfs.img");
  g_assert_cmpstr (e->options, ==, "root=UUID=1234 rw stagehand=/stagehand/deploy/fedora/3 quiet");
}

static void
test_tabs_and_runs_of_spaces_separate_key_and_value (void)
{
  g_autoptr (BootEntry) e = parse_ok ("other.conf", "title\t\tMy  OS \n"
                                                    "  version   1.2  \n"
                                                    "linux \t /vmlinuz\n");
  g_assert_cmpstr (e->title, ==, "My  OS");
  g_assert_cmpstr (e->version, ==, "1.2");
  g_assert_cmpstr (e->linux_path, ==, "/vmlinuz");
}

static void
test_multiple_initrd_lines_are_kept_in_order (void)
{
  g_autoptr (BootEntry) e
      = parse_ok ("stagehand-fedora-3.conf", "title T\n"
                                             "initrd /amd-ucode.img\n"
                                             "linux /vmlinuz\n"
                                             "initrd /intel-ucode.img\n"
                                             "initrd /initramfs.img\n"
                                             "options stagehand=/stagehand/deploy/fedora/3\n");
  g_assert_cmpuint (g_strv_length (e->initrds), ==, 3);
  g_assert_cmpstr (e->initrds[0], ==, "/amd-ucode.img");
  g_assert_cmpstr (e->initrds[1], ==, "/intel-ucode.img");
  g_assert_cmpstr (e->initrds[2], ==, "/initramfs.img");
}

static void
test_entry_without_initrd_has_none (void)
{
  g_autoptr (BootEntry) e
      = parse_ok ("stagehand-fedora-3.conf", "linux /vmlinuz\n"
                                             "options stagehand=/stagehand/deploy/fedora/3\n");
  g_assert_nonnull (e->initrds);
  g_assert_cmpuint (g_strv_length (e->initrds), ==, 0);
  g_assert_null (e->title);
  g_assert_null (e->version);
  g_assert_null (e->sort_key);
}

static void
test_multiple_options_lines_are_joined (void)
{
  /* BLS: "options" may appear more than once; the values are concatenated. */
  g_autoptr (BootEntry) e
      = parse_ok ("stagehand-fedora-3.conf", "linux /vmlinuz\n"
                                             "options root=LABEL=os rw\n"
                                             "options stagehand=/stagehand/deploy/fedora/3\n"
                                             "options  quiet\n");
  g_assert_cmpstr (e->options, ==, "root=LABEL=os rw stagehand=/stagehand/deploy/fedora/3 quiet");
  g_autofree char *deployment = boot_entry_get_deployment (e);
  g_assert_cmpstr (deployment, ==, "/stagehand/deploy/fedora/3");
}

static void
test_serialized_entry_has_one_line_per_key (void)
{
  g_autoptr (BootEntry) e
      = parse_ok ("stagehand-fedora-3.conf", "options a=1\n"
                                             "initrd /one\n"
                                             "linux /vmlinuz\n"
                                             "title T\n"
                                             "options stagehand=/stagehand/deploy/fedora/3\n"
                                             "version 3\n"
                                             "initrd /two\n"
                                             "sort-key 00-stagehand\n");
  g_autofree char *data = boot_entry_to_data (e);
  g_assert_cmpstr (data, ==,
                   "title T\n"
                   "version 3\n"
                   "sort-key 00-stagehand\n"
                   "linux /vmlinuz\n"
                   "initrd /one\n"
                   "initrd /two\n"
                   "options a=1 stagehand=/stagehand/deploy/fedora/3\n");
}

static void
test_stagehand_entry_round_trips_through_serialize (void)
{
  g_autoptr (BootEntry) first
      = parse_ok ("stagehand-fedora-3.conf", FULL_ENTRY "initrd /second.img\n"
                                                        "options extra=\"a b\"\n");
  g_autofree char *data = boot_entry_to_data (first);
  g_autoptr (BootEntry) second = parse_ok ("stagehand-fedora-3.conf", data);
  g_autofree char *again = boot_entry_to_data (second);

  g_assert_cmpstr (second->title, ==, first->title);
  g_assert_cmpstr (second->version, ==, first->version);
  g_assert_cmpstr (second->sort_key, ==, first->sort_key);
  g_assert_cmpstr (second->machine_id, ==, first->machine_id);
  g_assert_cmpstr (second->linux_path, ==, first->linux_path);
  g_assert_cmpuint (g_strv_length (second->initrds), ==, 2);
  g_assert_cmpstr (second->initrds[0], ==, first->initrds[0]);
  g_assert_cmpstr (second->initrds[1], ==, "/second.img");
  g_assert_cmpstr (second->options, ==, first->options);
  g_assert_cmpstr (again, ==, data);
}

static void
test_foreign_entry_is_written_back_verbatim (void)
{
  /* Another tool's entry: comments, odd spacing, keys stagehand does not
   * know, no trailing newline. It must come back byte for byte. */
  static const char raw[]
      = "# Boot Loader Specification type#1 entry\n"
        "# File created by kernel-install\n"
        "title      Debian GNU/Linux 12 (bookworm)\n"
        "version    6.1.0-21-amd64\n"
        "machine-id 0123456789abcdef0123456789abcdef\n"
        "sort-key   debian\n"
        "options    root=UUID=abcd ro quiet\n"
        "linux      /0123456789abcdef0123456789abcdef/6.1.0-21-amd64/linux\n"
        "initrd     /0123456789abcdef0123456789abcdef/6.1.0-21-amd64/initrd.img\n"
        "devicetree /dtb/board.dtb\n"
        "architecture x64";
  g_autoptr (BootEntry) e = parse_ok ("0123456789abcdef0123456789abcdef-6.1.0-21-amd64.conf", raw);
  g_assert_false (boot_entry_is_ours (e));
  g_assert_cmpstr (e->sort_key, ==, "debian");
  g_assert_cmpstr (e->version, ==, "6.1.0-21-amd64");
  g_autofree char *data = boot_entry_to_data (e);
  g_assert_cmpstr (data, ==, raw);
}

static void
test_foreign_entry_without_linux_is_accepted (void)
{
  /* e.g. an entry chain-loading another EFI binary; not ours to judge. */
  g_autoptr (BootEntry) e
      = parse_ok ("windows.conf", "title Windows\nefi /EFI/Microsoft/boot.efi\n");
  g_assert_null (e->linux_path);
  g_autofree char *deployment = boot_entry_get_deployment (e);
  g_assert_null (deployment);
}

static void
test_foreign_entry_with_empty_options_line_is_kept (void)
{
  /* kernel-install's 90-loaderentry writes "options $BOOT_OPTIONS"
   * unconditionally, and bootctl accepts an empty options field. A foreign
   * entry is carried over verbatim; refusing it as corrupt would make every
   * stagehand operation that reads the entry set fail on another tool's
   * file. */
  static const char raw[] = "title Debian\n"
                            "options    \n"
                            "linux /vmlinuz\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (BootEntry) e = NULL;
  if (!boot_entry_parse ("debian-6.1.conf", raw, &e, &error))
    {
      g_test_fail_printf ("refused: %s", error->message);
      return;
    }
  g_autofree char *data = boot_entry_to_data (e);
  g_assert_cmpstr (data, ==, raw);
}

static void
test_stagehand_entry_without_linux_is_corrupt (void)
{
  assert_corrupt ("stagehand-fedora-3.conf",
                  "title T\noptions stagehand=/stagehand/deploy/fedora/3\n", "linux");
}

static void
test_stagehand_entry_without_deployment_karg_is_corrupt (void)
{
  assert_corrupt ("stagehand-fedora-3.conf", "title T\nlinux /vmlinuz\noptions quiet\n",
                  "stagehand=");
  assert_corrupt ("stagehand-fedora-3.conf", "title T\nlinux /vmlinuz\n", "stagehand=");
  assert_corrupt ("stagehand-fedora-3.conf",
                  "title T\nlinux /vmlinuz\noptions stagehandx=/stagehand/deploy/fedora/3\n",
                  "stagehand=");
}

static void
test_stagehand_entry_key_without_value_is_corrupt (void)
{
  assert_corrupt ("stagehand-fedora-3.conf",
                  "title T\nlinux\noptions stagehand=/stagehand/deploy/fedora/3\n", "line 2");
}

static void
test_deployment_is_read_from_the_stagehand_karg (void)
{
  g_autoptr (BootEntry) e = parse_ok ("stagehand-fedora-3.conf", FULL_ENTRY);
  g_autofree char *deployment = boot_entry_get_deployment (e);
  g_assert_cmpstr (deployment, ==, "/stagehand/deploy/fedora/3");

  g_autoptr (BootEntry) quoted = parse_ok ("other.conf", "linux /vmlinuz\n"
                                                         "options foo=\"stagehand=/not/this\" "
                                                         "stagehand=/stagehand/deploy/os/7\n");
  g_autofree char *from_quoted = boot_entry_get_deployment (quoted);
  g_assert_cmpstr (from_quoted, ==, "/stagehand/deploy/os/7");
}

/* --- menu order ------------------------------------------------------- */

static BootEntry *
entry_new (const char *filename, const char *sort_key, const char *machine_id, const char *version)
{
  BootEntry *e = boot_entry_new (filename);
  e->sort_key = g_strdup (sort_key);
  e->machine_id = g_strdup (machine_id);
  e->version = g_strdup (version);
  e->options = g_strdup ("");
  return e;
}

static void
assert_menu_order (GPtrArray *entries, const char *const *expected_filenames)
{
  boot_entries_sort (entries);
  g_autoptr (GString) actual = g_string_new (NULL);
  for (guint i = 0; i < entries->len; i++)
    g_string_append_printf (actual, "%s%s", i ? " " : "",
                            ((BootEntry *)entries->pdata[i])->filename);
  g_autofree char *expected = g_strjoinv (" ", (char **)expected_filenames);
  g_assert_cmpstr (actual->str, ==, expected);

  /* The comparison agrees with itself both ways round. */
  for (guint i = 0; i < entries->len; i++)
    for (guint j = 0; j < entries->len; j++)
      {
        int r = boot_entry_compare (entries->pdata[i], entries->pdata[j]);
        if (i < j)
          g_assert_cmpint (r, <, 0);
        else if (i > j)
          g_assert_cmpint (r, >, 0);
        else
          g_assert_cmpint (r, ==, 0);
      }
}

static void
test_stagehand_default_sorts_before_foreign_entries (void)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("zz-no-sort-key.conf", NULL, NULL, "99"));
  g_ptr_array_add (entries, entry_new ("debian-6.1.conf", "debian", "0123456789abcdef", "6.1.0"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-1.conf", BOOT_ENTRY_SORT_KEY, NULL, "1"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-3.conf", BOOT_ENTRY_SORT_KEY, NULL, "3.x"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-2.conf", BOOT_ENTRY_SORT_KEY, NULL, "2.x"));
  static const char *const expected[]
      = { "stagehand-os-3.conf", "stagehand-os-2.conf", "stagehand-os-1.conf",
          "debian-6.1.conf",     "zz-no-sort-key.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_stagehand_sort_key_sorts_before_os_release_ids (void)
{
  static const char *const ids[]
      = { "arch", "debian", "fedora", "opensuse-tumbleweed", "ubuntu", "0day", "00-z" };
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      g_autoptr (BootEntry) ours
          = entry_new ("stagehand-os-1.conf", BOOT_ENTRY_SORT_KEY, NULL, "1");
      g_autoptr (BootEntry) theirs = entry_new ("a.conf", ids[i], NULL, "99");
      g_test_message ("sort-key %s", ids[i]);
      g_assert_cmpint (boot_entry_compare (ours, theirs), <, 0);
    }
}

static void
test_entries_without_sort_key_sort_after_those_with_one (void)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("zzz.conf", NULL, NULL, NULL));
  g_ptr_array_add (entries, entry_new ("aaa.conf", "zzz-last-key", NULL, NULL));
  g_ptr_array_add (entries, entry_new ("mmm.conf", NULL, NULL, "100"));
  static const char *const expected[] = { "aaa.conf", "zzz.conf", "mmm.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_entries_without_sort_key_order_by_file_name_descending (void)
{
  /* Version comparison, not strcmp: 6.10 is newer than 6.8 and 6.9. */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("fedora-6.8.conf", NULL, NULL, "999"));
  g_ptr_array_add (entries, entry_new ("fedora-6.10.conf", NULL, NULL, "1"));
  g_ptr_array_add (entries, entry_new ("fedora-6.9.conf", NULL, NULL, NULL));
  static const char *const expected[]
      = { "fedora-6.10.conf", "fedora-6.9.conf", "fedora-6.8.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_sort_key_orders_before_version (void)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("b.conf", "fedora", NULL, "1"));
  g_ptr_array_add (entries, entry_new ("a.conf", "debian", NULL, "1"));
  g_ptr_array_add (entries, entry_new ("c.conf", "arch", NULL, "0.1"));
  static const char *const expected[] = { "c.conf", "a.conf", "b.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_machine_id_groups_before_version (void)
{
  /* systemd-boot: several installations of one OS are grouped by machine
   * id; an entry without one comes first (strcmp8 puts NULL first). */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("b-1.conf", "fedora", "bbbb", "9"));
  g_ptr_array_add (entries, entry_new ("a-1.conf", "fedora", "aaaa", "1"));
  g_ptr_array_add (entries, entry_new ("a-2.conf", "fedora", "aaaa", "2"));
  g_ptr_array_add (entries, entry_new ("none.conf", "fedora", NULL, "0"));
  static const char *const expected[] = { "none.conf", "a-2.conf", "a-1.conf", "b-1.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_newest_version_comes_first_within_a_sort_key (void)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("stagehand-os-1.conf", BOOT_ENTRY_SORT_KEY, NULL, "40.1"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-2.conf", BOOT_ENTRY_SORT_KEY, NULL, "40.10"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-3.conf", BOOT_ENTRY_SORT_KEY, NULL, "41~rc1"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-4.conf", BOOT_ENTRY_SORT_KEY, NULL, "40.9"));
  static const char *const expected[] = { "stagehand-os-3.conf", "stagehand-os-2.conf",
                                          "stagehand-os-4.conf", "stagehand-os-1.conf", NULL };
  assert_menu_order (entries, expected);
}

static void
test_same_version_falls_back_to_file_name_descending (void)
{
  /* Staging the same image twice gives two entries with one version; the
   * higher deployment id (the newer one) wins, 10 over 9. */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("stagehand-os-9.conf", BOOT_ENTRY_SORT_KEY, NULL, "40"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-10.conf", BOOT_ENTRY_SORT_KEY, NULL, "40"));
  g_ptr_array_add (entries, entry_new ("stagehand-os-8.conf", BOOT_ENTRY_SORT_KEY, NULL, "40"));
  static const char *const expected[]
      = { "stagehand-os-10.conf", "stagehand-os-9.conf", "stagehand-os-8.conf", NULL };
  assert_menu_order (entries, expected);
}

/* --- boot counters (automatic boot assessment) ------------------------ */

static void
assert_name_split (const char *filename, const char *expected_id, const char *expected_text,
                   int expected_left, int expected_done)
{
  BootCounter c;
  g_autofree char *id = boot_entry_name_split (filename, &c);
  g_test_message ("%s", filename);
  g_assert_cmpstr (id, ==, expected_id);
  g_assert_cmpstr (c.text, ==, expected_text);
  g_assert_cmpint (c.tries_left, ==, expected_left);
  g_assert_cmpint (c.tries_done, ==, expected_done);
  boot_counter_clear (&c);
  /* Joined again, the name comes back as it was. */
  g_autofree char *joined = boot_entry_name_join (id, expected_text);
  g_assert_cmpstr (joined, ==, filename);
}

static void
test_counter_is_parsed_from_the_file_name (void)
{
  assert_name_split ("stagehand-2-os-5+3.conf", "stagehand-2-os-5.conf", "+3", 3, 0);
  assert_name_split ("stagehand-2-os-5+2-1.conf", "stagehand-2-os-5.conf", "+2-1", 2, 1);
  assert_name_split ("stagehand-2-os-5+0-3.conf", "stagehand-2-os-5.conf", "+0-3", 0, 3);
  assert_name_split ("stagehand-2-os-5+0.conf", "stagehand-2-os-5.conf", "+0", 0, 0);
  /* systemd-boot matches the suffix without case (vfat). */
  assert_name_split ("Other+1-1.CONF", "Other.CONF", "+1-1", 1, 1);
}

static void
test_counter_keeps_digit_widths (void)
{
  /* The spec keeps the number of digits: a zero-padded counter is still a
   * counter, and carried as it is written. */
  assert_name_split ("a+03-00.conf", "a.conf", "+03-00", 3, 0);
  assert_name_split ("a+010.conf", "a.conf", "+010", 10, 0);
}

static void
test_plus_elsewhere_in_a_name_is_not_a_counter (void)
{
  /* The last '+' starts the counter; what is before it is the name. */
  assert_name_split ("linux+rt+3.conf", "linux+rt.conf", "+3", 3, 0);
  assert_name_split ("a+1+0-3.conf", "a+1.conf", "+0-3", 0, 3);
  /* Not a counter: the name is its own identity. */
  assert_name_split ("linux+rt.conf", "linux+rt.conf", NULL, -1, 0);
  assert_name_split ("a+3x.conf", "a+3x.conf", NULL, -1, 0);
  assert_name_split ("a+.conf", "a+.conf", NULL, -1, 0);
  assert_name_split ("a+3-.conf", "a+3-.conf", NULL, -1, 0);
  assert_name_split ("a+-1.conf", "a+-1.conf", NULL, -1, 0);
  assert_name_split ("a+3-1-1.conf", "a+3-1-1.conf", NULL, -1, 0);
  assert_name_split ("a+3.conf.bak", "a+3.conf.bak", NULL, -1, 0);
  /* Beyond systemd-boot's INT_MAX: no counter. */
  assert_name_split ("a+99999999999.conf", "a+99999999999.conf", NULL, -1, 0);
  assert_name_split ("plain.conf", "plain.conf", NULL, -1, 0);
}

static void
test_identity_ignores_the_counter (void)
{
  g_assert_true (boot_entry_name_equal ("stagehand-2-os-5+3.conf", "stagehand-2-os-5+0-3.conf"));
  g_assert_true (boot_entry_name_equal ("stagehand-2-os-5.conf", "stagehand-2-os-5+1-2.conf"));
  /* LoaderEntrySelected from an older systemd-boot: lower case, counter kept. */
  g_assert_true (boot_entry_name_equal ("stagehand-2-OS-5+2-1.conf", "stagehand-2-os-5.conf"));
  g_assert_false (boot_entry_name_equal ("stagehand-2-os-5.conf", "stagehand-2-os-50.conf"));
  g_assert_false (boot_entry_name_equal ("stagehand-1-os-5.conf", "stagehand-2-os-5+3.conf"));
}

static void
test_parsed_entry_has_identity_and_counter (void)
{
  g_autoptr (BootEntry) e = parse_ok ("stagehand-2-fedora-3+1-2.conf", FULL_ENTRY);
  g_assert_true (boot_entry_is_ours (e));
  g_assert_cmpstr (e->filename, ==, "stagehand-2-fedora-3+1-2.conf");
  g_assert_cmpstr (e->id, ==, "stagehand-2-fedora-3.conf");
  g_assert_cmpstr (e->counter.text, ==, "+1-2");
  g_assert_false (boot_entry_is_exhausted (e));
  g_autoptr (BootEntry) plain = parse_ok ("stagehand-2-fedora-3.conf", FULL_ENTRY);
  g_assert_null (plain->counter.text);
  g_assert_cmpint (plain->counter.tries_left, ==, -1);
  g_assert_false (boot_entry_is_exhausted (plain));
  g_autoptr (BootEntry) spent = parse_ok ("stagehand-2-fedora-3+0-3.conf", FULL_ENTRY);
  g_assert_true (boot_entry_is_exhausted (spent));
}

static void
test_set_counter_renames_the_entry (void)
{
  g_autoptr (BootEntry) e = boot_entry_new ("stagehand-2-os-5.conf");
  boot_entry_set_counter (e, "+03-00");
  g_assert_cmpstr (e->filename, ==, "stagehand-2-os-5+03-00.conf");
  g_assert_cmpstr (e->id, ==, "stagehand-2-os-5.conf");
  g_assert_cmpint (e->counter.tries_left, ==, 3);
  g_autofree char *fresh = boot_counter_new_text (3);
  boot_entry_set_counter (e, fresh);
  g_assert_cmpstr (e->filename, ==, "stagehand-2-os-5+3.conf");
  boot_entry_set_counter (e, NULL);
  g_assert_cmpstr (e->filename, ==, "stagehand-2-os-5.conf");
  g_assert_null (e->counter.text);
}

static void
test_entry_without_tries_left_sorts_last (void)
{
  /* As systemd-boot sorts: the default that ran out of tries goes after
   * everything else, even another tool's entries; that is the fallback. */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries,
                   entry_new ("stagehand-3-os-3+0-3.conf", BOOT_ENTRY_SORT_KEY, NULL, "3"));
  g_ptr_array_add (entries, entry_new ("stagehand-2-os-2.conf", BOOT_ENTRY_SORT_KEY, NULL, "2"));
  g_ptr_array_add (entries,
                   entry_new ("stagehand-1-os-1+1-2.conf", BOOT_ENTRY_SORT_KEY, NULL, "1"));
  g_ptr_array_add (entries, entry_new ("debian-6.1.conf", "debian", NULL, "6.1"));
  static const char *const expected[] = { "stagehand-2-os-2.conf", "stagehand-1-os-1+1-2.conf",
                                          "debian-6.1.conf", "stagehand-3-os-3+0-3.conf", NULL };
  assert_menu_order (entries, expected);
  /* As written, before the boot loader's assessment: 3 was the default. */
  g_assert_cmpint (boot_entry_compare_as_written (entries->pdata[3], entries->pdata[0]), <, 0);
}

static void
test_counter_does_not_move_an_entry_among_the_others (void)
{
  /* The identity orders, not the name with its counter: "+3" must not
   * read as a version segment. */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("os-1+9.conf", NULL, NULL, NULL));
  g_ptr_array_add (entries, entry_new ("os-1-1.conf", NULL, NULL, NULL));
  g_ptr_array_add (entries, entry_new ("os-1.1.conf", NULL, NULL, NULL));
  static const char *const expected[] = { "os-1.1.conf", "os-1-1.conf", "os-1+9.conf", NULL };
  assert_menu_order (entries, expected);
  g_autoptr (GPtrArray) plain = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (plain, entry_new ("os-1.conf", NULL, NULL, NULL));
  g_ptr_array_add (plain, entry_new ("os-1-1.conf", NULL, NULL, NULL));
  g_ptr_array_add (plain, entry_new ("os-1.1.conf", NULL, NULL, NULL));
  static const char *const expected_plain[] = { "os-1.1.conf", "os-1-1.conf", "os-1.conf", NULL };
  assert_menu_order (plain, expected_plain);
}

static void
test_same_identity_twice_more_tries_left_first (void)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry_new ("a+1-2.conf", NULL, NULL, NULL));
  g_ptr_array_add (entries, entry_new ("a+2-2.conf", NULL, NULL, NULL));
  g_ptr_array_add (entries, entry_new ("a+2-1.conf", NULL, NULL, NULL));
  static const char *const expected[] = { "a+2-1.conf", "a+2-2.conf", "a+1-2.conf", NULL };
  assert_menu_order (entries, expected);
}

static BootEntry *
deployment_entry (const char *filename, const char *deployment_id)
{
  BootEntry *e = boot_entry_new (filename);
  e->options = g_strdup_printf ("quiet stagehand=/stagehand/deploy/os/%s", deployment_id);
  return e;
}

static char *
entry_names (GPtrArray *entries)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < entries->len; i++)
    g_string_append_printf (s, "%s%s", i ? " " : "", ((BootEntry *)entries->pdata[i])->filename);
  return g_string_free (s, FALSE);
}

static void
test_rewrite_keeps_counters_and_counts_only_the_new_default (void)
{
  g_autoptr (GPtrArray) live = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (live, deployment_entry ("stagehand-2-os-2+1-2.conf", "2"));
  g_ptr_array_add (live, deployment_entry ("stagehand-1-os-1+03-00.conf", "1"));
  g_ptr_array_add (live, deployment_entry ("other+1.conf", "9"));

  /* A finalize of os/3: it is new and gets the tries; the others keep
   * theirs as written; another tool's entry with the same karg lends
   * nothing. */
  g_autoptr (GPtrArray) set = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (set, deployment_entry ("stagehand-4-os-3.conf", "3"));
  g_ptr_array_add (set, deployment_entry ("stagehand-3-os-2.conf", "2"));
  g_ptr_array_add (set, deployment_entry ("stagehand-2-os-1.conf", "1"));
  g_ptr_array_add (set, deployment_entry ("stagehand-1-os-9.conf", "9"));
  boot_entries_carry_counters (set, live, 3);
  g_autofree char *names = entry_names (set);
  g_assert_cmpstr (names, ==,
                   "stagehand-4-os-3+3.conf stagehand-3-os-2+1-2.conf "
                   "stagehand-2-os-1+03-00.conf stagehand-1-os-9.conf");

  /* Counting off: the new default gets none, the others still keep theirs. */
  g_autoptr (GPtrArray) off = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (off, deployment_entry ("stagehand-2-os-3.conf", "3"));
  g_ptr_array_add (off, deployment_entry ("stagehand-1-os-2.conf", "2"));
  boot_entries_carry_counters (off, live, 0);
  g_autofree char *off_names = entry_names (off);
  g_assert_cmpstr (off_names, ==, "stagehand-2-os-3.conf stagehand-1-os-2+1-2.conf");
}

static void
test_rewrite_never_gives_a_failed_deployment_its_tries_back (void)
{
  /* A rollback-like rewrite: the new default was in the menu (no counter:
   * blessed), the failed one keeps +0-3 and so stays last. */
  g_autoptr (GPtrArray) live = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (live, deployment_entry ("stagehand-1-os-1.conf", "1"));
  g_ptr_array_add (live, deployment_entry ("stagehand-2-os-2+0-3.conf", "2"));
  g_autoptr (GPtrArray) set = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (set, deployment_entry ("stagehand-2-os-1.conf", "1"));
  g_ptr_array_add (set, deployment_entry ("stagehand-1-os-2.conf", "2"));
  boot_entries_carry_counters (set, live, 3);
  g_autofree char *names = entry_names (set);
  g_assert_cmpstr (names, ==, "stagehand-2-os-1.conf stagehand-1-os-2+0-3.conf");
  g_assert_true (boot_entry_is_exhausted (set->pdata[1]));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/bls/parses-a-full-stagehand-entry", test_parses_a_full_stagehand_entry);
  g_test_add_func ("/bls/counter/is-parsed-from-the-file-name",
                   test_counter_is_parsed_from_the_file_name);
  g_test_add_func ("/bls/counter/keeps-digit-widths", test_counter_keeps_digit_widths);
  g_test_add_func ("/bls/counter/plus-elsewhere-in-a-name-is-not-a-counter",
                   test_plus_elsewhere_in_a_name_is_not_a_counter);
  g_test_add_func ("/bls/counter/identity-ignores-the-counter", test_identity_ignores_the_counter);
  g_test_add_func ("/bls/counter/parsed-entry-has-identity-and-counter",
                   test_parsed_entry_has_identity_and_counter);
  g_test_add_func ("/bls/counter/set-counter-renames-the-entry",
                   test_set_counter_renames_the_entry);
  g_test_add_func ("/bls/counter/entry-without-tries-left-sorts-last",
                   test_entry_without_tries_left_sorts_last);
  g_test_add_func ("/bls/counter/does-not-move-an-entry-among-the-others",
                   test_counter_does_not_move_an_entry_among_the_others);
  g_test_add_func ("/bls/counter/same-identity-twice-more-tries-left-first",
                   test_same_identity_twice_more_tries_left_first);
  g_test_add_func ("/bls/counter/rewrite-keeps-counters-and-counts-only-the-new-default",
                   test_rewrite_keeps_counters_and_counts_only_the_new_default);
  g_test_add_func ("/bls/counter/rewrite-never-gives-a-failed-deployment-its-tries-back",
                   test_rewrite_never_gives_a_failed_deployment_its_tries_back);
  g_test_add_func ("/bls/tabs-and-runs-of-spaces-separate-key-and-value",
                   test_tabs_and_runs_of_spaces_separate_key_and_value);
  g_test_add_func ("/bls/multiple-initrd-lines-are-kept-in-order",
                   test_multiple_initrd_lines_are_kept_in_order);
  g_test_add_func ("/bls/entry-without-initrd-has-none", test_entry_without_initrd_has_none);
  g_test_add_func ("/bls/multiple-options-lines-are-joined",
                   test_multiple_options_lines_are_joined);
  g_test_add_func ("/bls/serialized-entry-has-one-line-per-key",
                   test_serialized_entry_has_one_line_per_key);
  g_test_add_func ("/bls/stagehand-entry-round-trips-through-serialize",
                   test_stagehand_entry_round_trips_through_serialize);
  g_test_add_func ("/bls/foreign-entry-is-written-back-verbatim",
                   test_foreign_entry_is_written_back_verbatim);
  g_test_add_func ("/bls/foreign-entry-without-linux-is-accepted",
                   test_foreign_entry_without_linux_is_accepted);
  g_test_add_func ("/bls/foreign-entry-with-empty-options-line-is-kept",
                   test_foreign_entry_with_empty_options_line_is_kept);
  g_test_add_func ("/bls/stagehand-entry-without-linux-is-corrupt",
                   test_stagehand_entry_without_linux_is_corrupt);
  g_test_add_func ("/bls/stagehand-entry-without-deployment-karg-is-corrupt",
                   test_stagehand_entry_without_deployment_karg_is_corrupt);
  g_test_add_func ("/bls/stagehand-entry-key-without-value-is-corrupt",
                   test_stagehand_entry_key_without_value_is_corrupt);
  g_test_add_func ("/bls/deployment-is-read-from-the-stagehand-karg",
                   test_deployment_is_read_from_the_stagehand_karg);

  g_test_add_func ("/bls/stagehand-default-sorts-before-foreign-entries",
                   test_stagehand_default_sorts_before_foreign_entries);
  g_test_add_func ("/bls/stagehand-sort-key-sorts-before-os-release-ids",
                   test_stagehand_sort_key_sorts_before_os_release_ids);
  g_test_add_func ("/bls/entries-without-sort-key-sort-after-those-with-one",
                   test_entries_without_sort_key_sort_after_those_with_one);
  g_test_add_func ("/bls/entries-without-sort-key-order-by-file-name-descending",
                   test_entries_without_sort_key_order_by_file_name_descending);
  g_test_add_func ("/bls/sort-key-orders-before-version", test_sort_key_orders_before_version);
  g_test_add_func ("/bls/machine-id-groups-before-version", test_machine_id_groups_before_version);
  g_test_add_func ("/bls/newest-version-comes-first-within-a-sort-key",
                   test_newest_version_comes_first_within_a_sort_key);
  g_test_add_func ("/bls/same-version-falls-back-to-file-name-descending",
                   test_same_version_falls_back_to_file_name_descending);

  return g_test_run ();
}

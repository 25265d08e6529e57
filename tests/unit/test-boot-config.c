/* The boot configuration's pure decisions: which mode a filesystem gets,
 * and names that every boot filesystem (FAT included) can hold. */
#include "config.h"

#include "boot-config.h"

#include <linux/magic.h>
#include <string.h>

static Origin *
make_origin (const char *os, const char *id)
{
  Origin *o = g_new0 (Origin, 1);
  o->os = g_strdup (os);
  o->id = g_strdup (id);
  o->title = g_strdup ("Test OS 1");
  o->version = g_strdup ("1.2");
  o->kernel_version = g_strdup ("6.1.0-test");
  o->kernel_path = g_strdup ("usr/lib/modules/6.1.0-test/vmlinuz");
  o->initramfs_path = g_strdup ("usr/lib/modules/6.1.0-test/initramfs.img");
  o->bootcsum = g_strnfill (64, 'a');
  o->kargs = g_strsplit ("root=LABEL=root quiet", " ", -1);
  return o;
}

static void
test_vfat_gets_exchange_mode (void)
{
  g_assert_cmpint (boot_mode_for_filesystem (MSDOS_SUPER_MAGIC), ==, BOOT_MODE_EXCHANGE);
}

static void
test_symlink_capable_filesystems_get_symlink_mode (void)
{
  const long types[] = { EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC };
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    g_assert_cmpint (boot_mode_for_filesystem (types[i]), ==, BOOT_MODE_SYMLINK);
}

static void
test_debug_switch_makes_exchange_non_atomic (void)
{
  g_autofree char *reason = NULL;
  g_assert_false (boot_exchange_expect_atomic (EXT4_SUPER_MAGIC, "6.1.0", TRUE, &reason));
  g_assert_nonnull (strstr (reason, "STAGEHAND_DEBUG_NO_EXCHANGE"));
}

/* Issue 14: atomicity was decided by the kernel version alone, so ext4,
 * xfs and btrfs on 4.18 or 5.x (the Fedora/RHEL /boot/loader/entries
 * layout) always took the non-atomic path. Only vfat depends on it. */
static void
test_exchange_is_atomic_by_filesystem_not_kernel_version (void)
{
  const long capable[] = { EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC };
  const char *old_kernels[] = { "4.18.0-553.el8.x86_64", "5.14.0-427.el9.x86_64", "5.10.0-28" };
  for (guint i = 0; i < G_N_ELEMENTS (capable); i++)
    for (guint k = 0; k < G_N_ELEMENTS (old_kernels); k++)
      {
        g_autofree char *reason = NULL;
        g_assert_true (boot_exchange_expect_atomic (capable[i], old_kernels[k], FALSE, &reason));
        g_assert_nonnull (strstr (reason, "supports RENAME_EXCHANGE"));
      }

  g_autofree char *old_vfat = NULL, *new_vfat = NULL, *unknown = NULL;
  g_assert_false (boot_exchange_expect_atomic (MSDOS_SUPER_MAGIC, "5.15.0", FALSE, &old_vfat));
  g_assert_nonnull (
      strstr (old_vfat, "vfat refuses RENAME_EXCHANGE before Linux 6.0 (this is 5.15.0)"));
  g_assert_true (boot_exchange_expect_atomic (MSDOS_SUPER_MAGIC, "6.1.0", FALSE, &new_vfat));
  g_assert_false (boot_exchange_expect_atomic (0x12345678, "6.1.0", FALSE, &unknown));
  g_assert_nonnull (strstr (unknown, "type 0x12345678"));
}

/* FAT long names: at most 255 characters, none of "*:<>?\| or controls. */
static void
assert_fat_safe (const char *name)
{
  g_assert_cmpuint (strlen (name), <=, 255);
  for (const char *p = name; *p; p++)
    {
      g_assert_false (strchr ("\"*/:<>?\\|", *p) != NULL);
      g_assert_false (g_ascii_iscntrl (*p));
    }
}

static void
test_entry_and_kernel_names_fit_fat (void)
{
  /* The longest os name allowed (64) and a large id. */
  g_autofree char *os = g_strnfill (64, 'x');
  g_autoptr (Origin) o = make_origin (os, "999999999");
  g_autoptr (BootEntry) e = boot_entry_new_for_origin (o, 64);
  assert_fat_safe (e->filename);
  g_autofree char *dir = origin_boot_dir_name (o);
  assert_fat_safe (dir);
  g_autofree char *expected = g_strdup_printf ("%s-%s", os, o->bootcsum);
  g_assert_cmpstr (dir, ==, expected);
}

static void
test_entry_for_origin_content (void)
{
  g_autoptr (Origin) o = make_origin ("testos", "3");
  g_autoptr (BootEntry) e = boot_entry_new_for_origin (o, 2);
  g_autofree char *data = boot_entry_to_data (e);
  g_autofree char *csum = g_strnfill (64, 'a');
  g_autofree char *expected = g_strdup_printf ("title Test OS 1 (testos 3)\n"
                                               "version 2-1.2\n"
                                               "sort-key " BOOT_ENTRY_SORT_KEY "\n"
                                               "linux /stagehand/testos-%s/vmlinuz\n"
                                               "initrd /stagehand/testos-%s/initramfs.img\n"
                                               "options stagehand=/stagehand/deploy/testos/3 "
                                               "root=LABEL=root quiet\n",
                                               csum, csum);
  g_assert_cmpstr (data, ==, expected);
  g_assert_cmpstr (e->filename, ==, "stagehand-2-testos-3.conf");
}

static void
test_higher_priority_is_the_default (void)
{
  g_autoptr (Origin) older = make_origin ("testos", "3");
  g_autoptr (Origin) newer = make_origin ("testos", "10");
  /* A rollback makes the older deployment the default: priority decides,
   * not the id or the os version. */
  g_autoptr (BootEntry) a = boot_entry_new_for_origin (older, 2);
  g_autoptr (BootEntry) b = boot_entry_new_for_origin (newer, 1);
  g_assert_cmpint (boot_entry_compare (a, b), <, 0);
  g_assert_cmpint (boot_entry_compare (b, a), >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/boot-config/vfat-gets-exchange-mode", test_vfat_gets_exchange_mode);
  g_test_add_func ("/boot-config/symlink-capable-filesystems-get-symlink-mode",
                   test_symlink_capable_filesystems_get_symlink_mode);
  g_test_add_func ("/boot-config/debug-switch-makes-exchange-non-atomic",
                   test_debug_switch_makes_exchange_non_atomic);
  g_test_add_func ("/boot-config/exchange-is-atomic-by-filesystem-not-kernel-version",
                   test_exchange_is_atomic_by_filesystem_not_kernel_version);
  g_test_add_func ("/boot-config/entry-and-kernel-names-fit-fat",
                   test_entry_and_kernel_names_fit_fat);
  g_test_add_func ("/boot-config/entry-for-origin-content", test_entry_for_origin_content);
  g_test_add_func ("/boot-config/higher-priority-is-the-default",
                   test_higher_priority_is_the_default);
  return g_test_run ();
}

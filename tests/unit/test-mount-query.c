/* mount_query() against fixture mountinfo files. The paths asked about are
 * never touched, only their parent directories are resolved, so fixtures
 * name mount points below directories every system has ("/", and /mnt,
 * /boot, /srv where a test says so). */
#include "config.h"

#include "errors.h"
#include "mount-query.h"

#include <unistd.h>

static MountState *
query (const char *fixture, const char *path)
{
  g_autofree char *mountinfo = g_build_filename (FIXTURES_DIR, fixture, NULL);
  g_autoptr (GError) error = NULL;
  MountState *state = NULL;
  g_assert_true (mount_query (mountinfo, path, &state, &error));
  g_assert_no_error (error);
  g_assert_nonnull (state);
  return state;
}

static void
assert_describes (const MountState *state, const char *expected)
{
  g_autofree char *line = mount_state_describe (state);
  g_assert_cmpstr (line, ==, expected);
}

/* For paths whose parent directory is not "/": resolving it needs it to exist. */
static gboolean
skip_without_dir (const char *dir)
{
  if (g_file_test (dir, G_FILE_TEST_IS_DIR))
    return FALSE;
  g_autofree char *msg = g_strdup_printf ("%s does not exist on this system", dir);
  g_test_skip (msg);
  return TRUE;
}

static void
test_autofs_without_mount (void)
{
  g_autoptr (MountState) state = query ("mountinfo-autofs-unmounted", "/boot");
  g_assert_cmpstr (state->target, ==, "/boot");
  g_assert_true (state->is_mountpoint);
  g_assert_true (state->is_autofs);
  g_assert_false (state->is_mounted);
  g_assert_null (state->fstype);
  g_assert_null (state->source);
  assert_describes (state, "autofs, not mounted");
}

static void
test_autofs_with_mount_on_top (void)
{
  g_autoptr (MountState) state = query ("mountinfo-autofs-mounted", "/boot");
  g_assert_true (state->is_mountpoint);
  g_assert_true (state->is_autofs);
  g_assert_true (state->is_mounted);
  g_assert_cmpstr (state->fstype, ==, "ext4");
  g_assert_cmpstr (state->source, ==, "/dev/loop0");
  assert_describes (state, "autofs, mounted (ext4 /dev/loop0)");
}

static void
test_systemd_automount_entries (void)
{
  g_autoptr (MountState) boot = query ("mountinfo-systemd-automount", "/boot");
  g_assert_true (boot->is_autofs);
  g_assert_false (boot->is_mounted);
  assert_describes (boot, "autofs, not mounted");

  g_autoptr (MountState) efi = query ("mountinfo-systemd-automount", "/efi");
  g_assert_true (efi->is_autofs);
  g_assert_true (efi->is_mounted);
  assert_describes (efi, "autofs, mounted (vfat /dev/vda1)");
}

static void
test_mount_below_does_not_count (void)
{
  g_autoptr (MountState) boot = query ("mountinfo-nested", "/boot");
  g_assert_cmpstr (boot->target, ==, "/boot");
  g_assert_false (boot->is_mountpoint);
  g_assert_false (boot->is_autofs);
  g_assert_false (boot->is_mounted);
  g_assert_null (boot->fstype);
  g_assert_null (boot->source);
  assert_describes (boot, "not a mount point");

  /* An indirect automount map: the mount below the autofs point is not a
   * mount at it. */
  g_autoptr (MountState) misc = query ("mountinfo-nested", "/misc");
  g_assert_true (misc->is_autofs);
  g_assert_false (misc->is_mounted);
  assert_describes (misc, "autofs, not mounted");
}

static void
test_mount_below_is_found_at_its_own_path (void)
{
  if (skip_without_dir ("/boot"))
    return;
  g_autoptr (MountState) efi = query ("mountinfo-nested", "/boot/efi");
  g_assert_cmpstr (efi->target, ==, "/boot/efi");
  g_assert_true (efi->is_mountpoint);
  g_assert_false (efi->is_autofs);
  assert_describes (efi, "vfat /dev/vda1");
}

static void
test_escaped_paths (void)
{
  if (skip_without_dir ("/mnt"))
    return;
  g_autoptr (MountState) state = query ("mountinfo-escaped", "/mnt/my boot");
  g_assert_cmpstr (state->target, ==, "/mnt/my boot");
  g_assert_true (state->is_mounted);
  assert_describes (state, "ext4 /dev/sdb1");

  g_autoptr (MountState) odd = query ("mountinfo-escaped", "/mnt/tab\tand\\backslash");
  assert_describes (odd, "ext4 /dev/sdb2");

  /* The escaped spelling is not a path anyone has. */
  g_autoptr (MountState) raw = query ("mountinfo-escaped", "/mnt/my\\040boot");
  g_assert_false (raw->is_mountpoint);
  g_autoptr (MountState) prefix = query ("mountinfo-escaped", "/mnt/my");
  g_assert_false (prefix->is_mountpoint);
}

static void
test_plain_ext4 (void)
{
  g_autoptr (MountState) state = query ("mountinfo-plain-ext4", "/boot");
  g_assert_true (state->is_mountpoint);
  g_assert_false (state->is_autofs);
  g_assert_true (state->is_mounted);
  g_assert_cmpstr (state->fstype, ==, "ext4");
  g_assert_cmpstr (state->source, ==, "/dev/vda1");
  assert_describes (state, "ext4 /dev/vda1");
}

static void
test_not_a_mountpoint (void)
{
  g_autoptr (MountState) state = query ("mountinfo-plain-ext4", "/sysroot");
  g_assert_cmpstr (state->target, ==, "/sysroot");
  g_assert_false (state->is_mountpoint);
  g_assert_false (state->is_mounted);
  assert_describes (state, "not a mount point");

  /* A prefix of a mount point is not one. */
  g_autoptr (MountState) prefix = query ("mountinfo-nested", "/boot-o");
  g_assert_false (prefix->is_mountpoint);
}

static void
test_over_mounted_reports_top (void)
{
  g_autoptr (MountState) boot = query ("mountinfo-overmounted", "/boot");
  g_assert_false (boot->is_autofs);
  g_assert_cmpstr (boot->source, ==, "/dev/loop0");
  assert_describes (boot, "ext4 /dev/loop0");

  g_autoptr (MountState) efi = query ("mountinfo-overmounted", "/efi");
  g_assert_true (efi->is_autofs);
  assert_describes (efi, "autofs, mounted (vfat /dev/loop1)");
}

static void
test_bind_mount (void)
{
  g_autoptr (MountState) boot = query ("mountinfo-bind", "/boot");
  g_assert_true (boot->is_mounted);
  assert_describes (boot, "ext4 /dev/vda2");

  /* The directory bound is not itself a mount point. */
  if (skip_without_dir ("/srv"))
    return;
  g_autoptr (MountState) srv = query ("mountinfo-bind", "/srv/boot");
  g_assert_false (srv->is_mountpoint);
}

static void
test_mount_hidden_under_over_mounted_root (void)
{
  /* The vfat at /boot sits on the old root that the ext4 root covers; the
   * visible /boot is the automount on the new root. */
  g_autoptr (MountState) state = query ("mountinfo-hidden-under-overmounted-root", "/boot");
  g_assert_true (state->is_autofs);
  g_assert_false (state->is_mounted);
  assert_describes (state, "autofs, not mounted");
}

static void
test_last_component_not_touched (void)
{
  /* Not on this system, only in the fixture: had mount_query() looked at
   * the path itself it would have failed. */
  g_assert_false (g_file_test ("/stagehand-absent-mount-point", G_FILE_TEST_EXISTS));
  g_autoptr (MountState) state = query ("mountinfo-plain-ext4", "/stagehand-absent-mount-point");
  g_assert_true (state->is_mountpoint);
  assert_describes (state, "xfs /dev/vda4");
}

static void
test_path_made_canonical (void)
{
  const char *spellings[]
      = { "/boot/", "//boot", "/boot/.", "/boot//./", "/./boot", "/proc/../boot" };
  for (gsize i = 0; i < G_N_ELEMENTS (spellings); i++)
    {
      g_autoptr (MountState) state = query ("mountinfo-plain-ext4", spellings[i]);
      g_assert_cmpstr (state->target, ==, "/boot");
      g_assert_true (state->is_mounted);
    }

  g_autoptr (MountState) root = query ("mountinfo-plain-ext4", "/.");
  g_assert_cmpstr (root->target, ==, "/");
  assert_describes (root, "ext4 /dev/vda2");
}

static void
test_relative_path_from_cwd (void)
{
  g_autofree char *saved = g_get_current_dir ();
  g_assert_cmpint (chdir ("/"), ==, 0);
  g_autoptr (MountState) state = query ("mountinfo-plain-ext4", "boot");
  g_assert_cmpint (chdir (saved), ==, 0);
  g_assert_cmpstr (state->target, ==, "/boot");
  g_assert_true (state->is_mounted);
}

static void
test_parent_symlink_resolved (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("test-mount-query-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *link = g_build_filename (tmp, "root", NULL);
  g_assert_cmpint (symlink ("/", link), ==, 0);
  g_autofree char *path = g_build_filename (link, "boot", NULL);

  g_autoptr (MountState) state = query ("mountinfo-plain-ext4", path);
  g_assert_cmpstr (state->target, ==, "/boot");
  g_assert_true (state->is_mounted);

  g_assert_cmpint (unlink (link), ==, 0);
  g_assert_cmpint (rmdir (tmp), ==, 0);
}

static void
test_missing_parent_fails (void)
{
  g_autofree char *mountinfo = g_build_filename (FIXTURES_DIR, "mountinfo-plain-ext4", NULL);
  g_autoptr (GError) error = NULL;
  MountState *state = NULL;
  g_assert_false (mount_query (mountinfo, "/stagehand-no-such-dir/boot", &state, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_cmpstr (error->message, ==,
                   "Resolving /stagehand-no-such-dir: No such file or directory");
  g_assert_null (state);
}

static void
test_missing_mountinfo_fails (void)
{
  g_autoptr (GError) error = NULL;
  MountState *state = NULL;
  g_assert_false (mount_query (FIXTURES_DIR "/mountinfo-does-not-exist", "/boot", &state, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_true (
      g_str_has_prefix (error->message, "Reading " FIXTURES_DIR "/mountinfo-does-not-exist: "));
  g_assert_null (state);
}

static void
test_empty_path_is_invalid (void)
{
  g_autoptr (GError) error = NULL;
  MountState *state = NULL;
  g_assert_false (mount_query (NULL, "", &state, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_assert_null (state);
}

static void
test_reads_proc_self_mountinfo (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MountState) state = NULL;
  g_assert_true (mount_query (NULL, "/proc", &state, &error));
  g_assert_no_error (error);
  g_assert_true (state->is_mountpoint);
  g_assert_cmpstr (state->fstype, ==, "proc");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/mount-query/autofs-without-mount", test_autofs_without_mount);
  g_test_add_func ("/mount-query/autofs-with-mount-on-top", test_autofs_with_mount_on_top);
  g_test_add_func ("/mount-query/systemd-automount-entries", test_systemd_automount_entries);
  g_test_add_func ("/mount-query/mount-below-does-not-count", test_mount_below_does_not_count);
  g_test_add_func ("/mount-query/mount-below-is-found-at-its-own-path",
                   test_mount_below_is_found_at_its_own_path);
  g_test_add_func ("/mount-query/escaped-paths", test_escaped_paths);
  g_test_add_func ("/mount-query/plain-ext4", test_plain_ext4);
  g_test_add_func ("/mount-query/not-a-mountpoint", test_not_a_mountpoint);
  g_test_add_func ("/mount-query/over-mounted-reports-top", test_over_mounted_reports_top);
  g_test_add_func ("/mount-query/bind-mount", test_bind_mount);
  g_test_add_func ("/mount-query/mount-hidden-under-over-mounted-root-ignored",
                   test_mount_hidden_under_over_mounted_root);
  g_test_add_func ("/mount-query/last-component-not-touched", test_last_component_not_touched);
  g_test_add_func ("/mount-query/path-made-canonical", test_path_made_canonical);
  g_test_add_func ("/mount-query/relative-path-from-cwd", test_relative_path_from_cwd);
  g_test_add_func ("/mount-query/parent-symlink-resolved", test_parent_symlink_resolved);
  g_test_add_func ("/mount-query/missing-parent-fails", test_missing_parent_fails);
  g_test_add_func ("/mount-query/missing-mountinfo-fails", test_missing_mountinfo_fails);
  g_test_add_func ("/mount-query/empty-path-is-invalid", test_empty_path_is_invalid);
  g_test_add_func ("/mount-query/reads-proc-self-mountinfo", test_reads_proc_self_mountinfo);

  return g_test_run ();
}

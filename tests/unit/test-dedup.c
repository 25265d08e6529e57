/* Deduplication: an import with a reference deployment and its manifest
 * hard-links exactly the regular files that are unchanged in every respect
 * (content, mode, owner, xattrs, mtime) and leaves the reference as it was;
 * never those under etc/, which the booted system writes (issue 15).
 * Runs as root in CI; as non-root, changing an owner is skipped. The
 * fixtures are in import-fixtures.c.
 */
#include "config.h"

#include "fsutil.h"
#include "image-import.h"
#include "import-fixtures.h"
#include "import-private.h"
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static ino_t
inode_at (Tmp *t, const char *dest, const char *path)
{
  int dfd = open_dir_at (t->dfd, dest);
  struct stat st;
  if (fstatat (dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
    g_error ("%s/%s: %s", dest, path, g_strerror (errno));
  close (dfd);
  return st.st_ino;
}

/* describe() without link counts, which sharing inodes changes by design. */
static char *
describe_content (const char *root)
{
  g_autofree char *full = describe (root);
  g_autoptr (GRegex) nlink = g_regex_new (" nlink=[0-9]+", 0, 0, NULL);
  return g_regex_replace_literal (nlink, full, -1, 0, "", 0, NULL);
}

typedef enum
{
  CHANGE_NOTHING,
  CHANGE_CONTENT, /* same size, same mtime: only the hash can tell */
  CHANGE_MODE,
  CHANGE_OWNER,
  CHANGE_XATTR,
  CHANGE_MTIME,
} Change;

#define CHANGED_FILE "caf\xe9"

/* The booted system writes its /etc: each deployment has its own copy. */
static gboolean
under_etc (const char *path)
{
  return g_str_has_prefix (path, "etc/");
}

/* Changes CHANGED_FILE in the image, keeping everything else about it. */
static void
apply_change (Tmp *t, Change change)
{
  int dfd = open_dir_at (t->dfd, "image");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, CHANGED_FILE, &st, 0));
  struct timespec times[2] = { st.st_atim, st.st_mtim };
  int fd = openat (dfd, CHANGED_FILE, O_RDWR | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  switch (change)
    {
    case CHANGE_NOTHING:
      break;
    case CHANGE_CONTENT:
      g_assert_cmpint (pwrite (fd, "X", 1, 0), ==, 1);
      break;
    case CHANGE_MODE:
      g_assert_no_errno (fchmod (fd, 0640));
      break;
    case CHANGE_OWNER:
      g_assert_no_errno (fchown (fd, 4321, 4321));
      break;
    case CHANGE_XATTR:
      g_assert_no_errno (fsetxattr (fd, "user.test", "changed", 7, 0));
      break;
    case CHANGE_MTIME:
      times[1].tv_nsec = (times[1].tv_nsec + 1) % 1000000000;
      break;
    }
  /* Writing moved the mtime; only CHANGE_MTIME may change it. */
  g_assert_no_errno (futimens (fd, times));
  close (fd);
  close (dfd);
}

/* The second import of the same image, with one file changed in one way,
 * links every unchanged regular file from the first and writes the changed
 * one; the first tree stays exactly as it was; the second is a faithful
 * copy of the changed image. */
static void
test_dedup_links_only_unchanged_files (Tmp *t, gconstpointer data)
{
  Change change = GPOINTER_TO_INT (data);
  if (change == CHANGE_OWNER && !is_root)
    {
      g_test_skip ("changing an owner needs root");
      return;
    }
  g_autofree char *image = make_fixture_image (t);
  if (change == CHANGE_XATTR && !have_user_xattrs)
    {
      g_test_skip ("no user.* xattrs on this filesystem");
      return;
    }
  g_autoptr (Manifest) first = import_dedup (t, image, "first", NULL, NULL);
  g_autofree char *first_path = tmp_file (t, "first");
  g_autofree char *first_before = describe_content (first_path);

  apply_change (t, change);
  g_autoptr (Manifest) second = import_dedup (t, image, "second", "first", first);

  for (guint i = 0; i < FIXTURE_LEN; i++)
    {
      const FixtureEntry *e = &FIXTURE[i];
      if (!fixture_is_regular (e))
        continue;
      gboolean changed = change != CHANGE_NOTHING && g_str_equal (e->path, CHANGED_FILE);
      ino_t a = inode_at (t, "first", e->path), b = inode_at (t, "second", e->path);
      if (changed && a == b)
        g_error ("%s changed but was linked from the reference", e->path);
      if (under_etc (e->path) && a == b)
        g_error ("%s is under etc/ but was linked from the reference", e->path);
      if (!changed && !under_etc (e->path) && a != b)
        g_error ("%s is unchanged but was not linked from the reference", e->path);
      g_assert_nonnull (manifest_lookup (second, e->path));
    }
  g_assert_cmpuint (manifest_count (second), ==, manifest_count (first));

  g_autofree char *first_after = describe_content (first_path);
  g_assert_cmpstr (first_after, ==, first_before);
  g_autofree char *second_path = tmp_file (t, "second");
  g_autofree char *want = describe_content (image);
  g_autofree char *got = describe_content (second_path);
  g_assert_cmpstr (got, ==, want);
}

/* Hashes cover the logical content (holes as zeros), so a tar stream of the
 * image shares every regular file with a tree imported from the directory:
 * small ones held in memory, and one larger than what is held, written and
 * then replaced by a link. */
static void
test_dedup_tar_shares_with_directory_import (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  int dfd = open_dir_at (t->dfd, "image");
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  gsize large = 17 * 1024 * 1024 + 5;
  g_autofree guint8 *bytes = g_malloc (large);
  for (gsize i = 0; i < large; i++)
    bytes[i] = g_rand_int (rand);
  write_at (dfd, "large", bytes, large);
  struct timespec times[2] = { { BASE_SEC, 0 }, { BASE_SEC, 0 } };
  g_assert_no_errno (utimensat (dfd, "large", times, 0));
  g_assert_no_errno (futimens (dfd, ROOT_TIMES));
  close (dfd);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");

  g_autoptr (Manifest) from_dir = import_dedup (t, image, "from-dir", NULL, NULL);
  g_autoptr (Manifest) from_tar = import_dedup (t, tar, "from-tar", "from-dir", from_dir);
  gsize dir_len, tar_len;
  g_autofree char *dir_data = manifest_to_data (from_dir, &dir_len);
  g_autofree char *tar_data = manifest_to_data (from_tar, &tar_len);
  g_assert_cmpstr (tar_data, ==, dir_data);
  for (guint i = 0; i < FIXTURE_LEN; i++)
    if (fixture_is_regular (&FIXTURE[i]) && !under_etc (FIXTURE[i].path))
      g_assert_cmpuint (inode_at (t, "from-tar", FIXTURE[i].path), ==,
                        inode_at (t, "from-dir", FIXTURE[i].path));
  g_assert_cmpuint (inode_at (t, "from-tar", "large"), ==, inode_at (t, "from-dir", "large"));
  g_autofree char *dir_path = tmp_file (t, "from-dir");
  g_autofree char *tar_path = tmp_file (t, "from-tar");
  g_autofree char *want = describe_content (dir_path);
  g_autofree char *got = describe_content (tar_path);
  g_assert_cmpstr (got, ==, want);
}

/* The reference's hard link pair and the new image's two separate files
 * with the same content: each reference inode is shared with at most one
 * inode of the new tree, so the two stay two. And the other way round, the
 * new image's own pair stays one inode. */
static void
test_dedup_keeps_hard_link_structure (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autoptr (Manifest) first = import_dedup (t, image, "first", NULL, NULL);

  /* usr/hardlink-b becomes a copy of hardlink-a: same content, mode, owner
   * and mtime, its own inode. */
  int dfd = open_dir_at (t->dfd, "image");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "hardlink-a", &st, 0));
  g_assert_no_errno (unlinkat (dfd, "usr/hardlink-b", 0));
  write_at (dfd, "usr/hardlink-b", "two names\n", strlen ("two names\n"));
  g_assert_no_errno (fchmodat (dfd, "usr/hardlink-b", st.st_mode & 07777, 0));
  if (is_root)
    g_assert_no_errno (fchownat (dfd, "usr/hardlink-b", st.st_uid, st.st_gid, 0));
  struct timespec times[2] = { st.st_atim, st.st_mtim };
  g_assert_no_errno (utimensat (dfd, "usr/hardlink-b", times, 0));
  /* ... and two separate files of the first image become one pair. */
  g_assert_no_errno (unlinkat (dfd, "caf\xc3\xa9", 0));
  g_assert_no_errno (linkat (dfd, "caf\xe9", dfd, "caf\xc3\xa9", 0));
  close (dfd);

  g_autoptr (Manifest) second = import_dedup (t, image, "second", "first", first);
  g_assert_cmpuint (inode_at (t, "second", "hardlink-a"), !=,
                    inode_at (t, "second", "usr/hardlink-b"));
  g_assert_true (inode_at (t, "second", "hardlink-a") == inode_at (t, "first", "hardlink-a")
                 || inode_at (t, "second", "usr/hardlink-b")
                        == inode_at (t, "first", "hardlink-a"));
  g_assert_cmpuint (inode_at (t, "second", "caf\xe9"), ==, inode_at (t, "second", "caf\xc3\xa9"));
  g_assert_cmpuint (inode_at (t, "second", "caf\xe9"), ==, inode_at (t, "first", "caf\xe9"));
  g_autofree char *second_path = tmp_file (t, "second");
  g_autofree char *want = describe_content (image);
  g_autofree char *got = describe_content (second_path);
  g_assert_cmpstr (got, ==, want);
}

/* A reference without a manifest (a deployment staged before manifests
 * existed) is never read: nothing is linked. */
static void
test_dedup_without_manifest_links_nothing (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  import_ok (image, t->dfd, "first");
  g_autoptr (Manifest) second = import_dedup (t, image, "second", "first", NULL);
  for (guint i = 0; i < FIXTURE_LEN; i++)
    if (fixture_is_regular (&FIXTURE[i]))
      g_assert_cmpuint (inode_at (t, "second", FIXTURE[i].path), !=,
                        inode_at (t, "first", FIXTURE[i].path));
}

/* The manifest vouches for content, not for the inode still being what it
 * describes: a reference file whose metadata no longer matches its manifest
 * entry is not linked. */
static void
test_dedup_ignores_stale_manifest_entry (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autoptr (Manifest) first = import_dedup (t, image, "first", NULL, NULL);
  int dfd = open_dir_at (t->dfd, "first");
  struct timespec times[2] = { { 0, UTIME_OMIT }, { BASE_SEC + 12345, 0 } };
  g_assert_no_errno (utimensat (dfd, CHANGED_FILE, times, 0));
  close (dfd);
  g_autoptr (Manifest) second = import_dedup (t, image, "second", "first", first);
  g_assert_cmpuint (inode_at (t, "second", CHANGED_FILE), !=, inode_at (t, "first", CHANGED_FILE));
  g_assert_cmpuint (inode_at (t, "second", "usr/bin/suid"), ==,
                    inode_at (t, "first", "usr/bin/suid"));
}

/* A pax hard link carrying data replaces its target's content. When the
 * target was linked from the reference, writing into it would change the
 * reference deployment: the data must go into a new inode instead. */
static void
test_dedup_hard_link_with_data_leaves_reference_intact (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) one = g_byte_array_new ();
  tar_add (one, "a", '0', 0644, NULL, "old\n");
  g_autofree char *tar1 = tar_write (t, one, "one.tar");
  g_autoptr (GByteArray) two = g_byte_array_new ();
  tar_add (two, "a", '0', 0644, NULL, "old\n");
  /* A pax extended header makes libarchive honour the hard link's size. */
  tar_add (two, "PaxHeader/b", 'x', 0644, NULL, "10 path=b\n");
  tar_add (two, "b", '1', 0644, "a", "new!\n");
  g_autofree char *tar2 = tar_write (t, two, "two.tar");

  g_autoptr (Manifest) first = import_dedup (t, tar1, "first", NULL, NULL);
  g_autoptr (Manifest) second = import_dedup (t, tar2, "second", "first", first);

  int dfd = open_dir_at (t->dfd, "first");
  g_autofree char *old = NULL;
  g_assert_true (fs_read_file_at (dfd, "a", G_MAXSIZE, &old, NULL, NULL));
  g_assert_cmpstr (old, ==, "old\n");
  close (dfd);
  dfd = open_dir_at (t->dfd, "second");
  g_autofree char *a = NULL, *b = NULL;
  g_assert_true (fs_read_file_at (dfd, "a", G_MAXSIZE, &a, NULL, NULL));
  g_assert_true (fs_read_file_at (dfd, "b", G_MAXSIZE, &b, NULL, NULL));
  close (dfd);
  g_assert_cmpstr (a, ==, "new!\n");
  g_assert_cmpstr (b, ==, "new!\n");
  g_assert_cmpuint (inode_at (t, "second", "a"), ==, inode_at (t, "second", "b"));
  g_assert_cmpuint (inode_at (t, "second", "a"), !=, inode_at (t, "first", "a"));
  /* The manifest describes what the names hold now. */
  g_assert_true (
      manifest_entry_equal (manifest_lookup (second, "a"), manifest_lookup (second, "b")));
  g_assert_false (
      manifest_entry_equal (manifest_lookup (second, "a"), manifest_lookup (first, "a")));
}

/* The content hash depends on the content only: holes given as
 * content_hash_zeros() (a sparse tar entry's gaps, a directory file's
 * holes) hash the same as the zeros read, however the content is cut;
 * and a hole costs one record, whatever its length (issue 14, item 6). */
static void
digest_of (const guint8 *data, gsize len, gsize chunk, gboolean zeros_as_holes, guint8 *ret)
{
  ContentHash *h = content_hash_new ();
  for (gsize pos = 0; pos < len;)
    {
      gsize n = MIN (chunk, len - pos);
      gboolean zero = TRUE;
      for (gsize i = 0; i < n && zero; i++)
        zero = data[pos + i] == 0;
      if (zeros_as_holes && zero)
        content_hash_zeros (h, n);
      else
        content_hash_update (h, data + pos, n);
      pos += n;
    }
  content_hash_digest (h, ret);
  content_hash_free (h);
}

static void
test_content_hash_holes_equal_zeros (void)
{
  gsize len = 5 * CONTENT_HASH_BLOCK + 123;
  g_autofree guint8 *data = g_malloc0 (len);
  memcpy (data + 7, "start", 5);
  memcpy (data + 3 * CONTENT_HASH_BLOCK + 100, "middle", 6);
  memcpy (data + len - 3, "end", 3);
  guint8 want[MANIFEST_HASH_LEN], got[MANIFEST_HASH_LEN];
  digest_of (data, len, len, FALSE, want);
  const gsize chunks[] = { 1, 100, 4095, 4096, 4097, 10000 };
  for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
    for (int holes = 0; holes < 2; holes++)
      {
        digest_of (data, len, chunks[i], holes, got);
        g_assert_cmpmem (got, sizeof got, want, sizeof want);
      }

  /* Another byte, or another length of trailing zeros, is another hash. */
  data[3 * CONTENT_HASH_BLOCK + 100] = 'M';
  digest_of (data, len, len, FALSE, got);
  g_assert_true (memcmp (got, want, sizeof want) != 0);
  data[3 * CONTENT_HASH_BLOCK + 100] = 'm';
  guint8 shorter[MANIFEST_HASH_LEN];
  memset (data + len - 3, 0, 3);
  digest_of (data, len, len, FALSE, got);
  digest_of (data, len - 1, len, FALSE, shorter);
  g_assert_true (memcmp (got, shorter, sizeof got) != 0);

  /* A petabyte of holes is one record. */
  ContentHash *h = content_hash_new ();
  content_hash_update (h, "x", 1);
  content_hash_zeros (h, G_GUINT64_CONSTANT (1) << 50);
  content_hash_update (h, "y", 1);
  content_hash_digest (h, got);
  content_hash_free (h);
}

/* etc/ is the booted system's writable /etc (docs/design.md, "Booting a
 * deployment"): a file there shared with another deployment would carry
 * an edit into it, the rollback deployment included. An unchanged image
 * still gets its own copy of every file under etc/, with the same manifest
 * entry, while the rest is shared. */
static void
test_dedup_never_links_etc (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autoptr (Manifest) first = import_dedup (t, image, "first", NULL, NULL);
  g_autoptr (Manifest) second = import_dedup (t, image, "second", "first", first);
  g_assert_cmpuint (inode_at (t, "second", "etc/os-release"), !=,
                    inode_at (t, "first", "etc/os-release"));
  g_assert_true (manifest_entry_equal (manifest_lookup (second, "etc/os-release"),
                                       manifest_lookup (first, "etc/os-release")));
  g_assert_cmpuint (inode_at (t, "second", "usr/bin/suid"), ==,
                    inode_at (t, "first", "usr/bin/suid"));
  g_autofree char *second_path = tmp_file (t, "second");
  g_autofree char *want = describe_content (image);
  g_autofree char *got = describe_content (second_path);
  g_assert_cmpstr (got, ==, want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  is_root = geteuid () == 0;

  static const struct
  {
    const char *name;
    Change change;
  } changes[] = {
    { "unchanged-files-share-the-reference-inode", CHANGE_NOTHING },
    { "changed-content-same-size-and-mtime-is-written", CHANGE_CONTENT },
    { "changed-mode-is-written", CHANGE_MODE },
    { "changed-owner-is-written", CHANGE_OWNER },
    { "changed-xattr-is-written", CHANGE_XATTR },
    { "changed-mtime-is-written", CHANGE_MTIME },
  };
  for (guint i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      g_autofree char *name = g_strdup_printf ("/import/dedup/%s", changes[i].name);
      g_test_add (name, Tmp, GINT_TO_POINTER (changes[i].change), tmp_setup,
                  test_dedup_links_only_unchanged_files, tmp_teardown);
    }
  g_test_add ("/import/dedup/tar-shares-with-directory-import", Tmp, NULL, tmp_setup,
              test_dedup_tar_shares_with_directory_import, tmp_teardown);
  g_test_add ("/import/dedup/keeps-hard-link-structure", Tmp, NULL, tmp_setup,
              test_dedup_keeps_hard_link_structure, tmp_teardown);
  g_test_add ("/import/dedup/without-manifest-links-nothing", Tmp, NULL, tmp_setup,
              test_dedup_without_manifest_links_nothing, tmp_teardown);
  g_test_add ("/import/dedup/ignores-stale-manifest-entry", Tmp, NULL, tmp_setup,
              test_dedup_ignores_stale_manifest_entry, tmp_teardown);
  g_test_add ("/import/dedup/hard-link-with-data-leaves-reference-intact", Tmp, NULL, tmp_setup,
              test_dedup_hard_link_with_data_leaves_reference_intact, tmp_teardown);
  g_test_add_func ("/import/content-hash/holes-hash-as-zeros-at-no-cost",
                   test_content_hash_holes_equal_zeros);
  g_test_add ("/import/dedup/never-links-etc", Tmp, NULL, tmp_setup, test_dedup_never_links_etc,
              tmp_teardown);
  return g_test_run ();
}

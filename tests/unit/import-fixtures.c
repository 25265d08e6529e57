/* Fixtures of the image import tests (test-image-import,
 * test-image-import-refuses, test-dedup, test-manifest).
 *
 * Fixture trees are built here, in a g_dir_make_tmp() directory, from one
 * table (FIXTURE); tar images of them are made with GNU tar the way image
 * builders make them (--xattrs --sparse, optionally compressed). Hostile
 * archives are written by hand (ustar headers) because GNU tar refuses to
 * create most of them. As non-root, everything is the caller's: owners
 * adapt, and the tests skip what needs root.
 */
#include "config.h"

#include "import-fixtures.h"

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

gboolean is_root;
gboolean have_user_xattrs = TRUE;

/* ---- temporary directory per test ---------------------------------------- */

void
tmp_setup (Tmp *t, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  t->path = g_dir_make_tmp ("stagehand-import-XXXXXX", &error);
  g_assert_no_error (error);
  t->dfd = open (t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_assert_cmpint (t->dfd, >=, 0);
}

/* Read-only directories of a fixture stop a non-root rm -rf: open them up. */
static void
make_writable (int dfd)
{
  DIR *d = fdopendir (fcntl (dfd, F_DUPFD_CLOEXEC, 3));
  g_assert_nonnull (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      (void)fchmodat (dfd, de->d_name, 0700, 0); /* best effort: removal reports what is left */
      int child = openat (dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0)
        {
          make_writable (child);
          close (child);
        }
    }
  closedir (d);
}

void
tmp_teardown (Tmp *t, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  make_writable (t->dfd);
  close (t->dfd);
  g_assert_true (fs_rm_rf_at (AT_FDCWD, t->path, &error));
  g_assert_no_error (error);
  g_free (t->path);
}

char *
tmp_file (Tmp *t, const char *name)
{
  return g_build_filename (t->path, name, NULL);
}

gboolean
exists_at (int dfd, const char *name)
{
  struct stat st;
  return fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- the fixture tree ----------------------------------------------------- */

const FixtureEntry FIXTURE[] = {
  { "etc", F_DIR, 0755, 0, 0, NULL, "on a directory" },
  { "etc/os-release", F_FILE, 0644, 0, 0, "NAME=Fixture\nVERSION_ID=1\n", "on a file" },
  { "usr", F_DIR, 0755, 0, 0, NULL, NULL },
  { "usr/bin", F_DIR, 0755, 0, 0, NULL, NULL },
  /* setuid survives only if the mode is set after the owner */
  { "usr/bin/suid", F_FILE, 04755, 1234, 5678, "#!/bin/sh\necho suid\n", NULL },
  { "usr/bin/sgid", F_FILE, 02711, 0, 5678, "#!/bin/sh\necho sgid\n", NULL },
  { "usr/bin/caps", F_FILE, 0750, 1234, 0, "pretend binary\n", NULL },
  { "tmp", F_DIR, 01777, 0, 0, NULL, NULL },
  { "private", F_DIR, 0700, 1234, 1234, NULL, NULL },
  { "private/secret", F_FILE, 0600, 1234, 1234, "secret\n", NULL },
  /* a non-root import must still fill a read-only directory */
  { "readonly", F_DIR, 0555, 0, 0, NULL, NULL },
  { "readonly/file", F_FILE, 0444, 0, 0, "read only\n", "on a read-only file" },
  { "empty", F_DIR, 0750, 0, 0, NULL, NULL },
  { "link-relative", F_SYMLINK, 0, 0, 0, "usr/bin/suid", NULL },
  { "link-absolute", F_SYMLINK, 0, 1234, 5678, "/etc/os-release", NULL },
  { "dangling", F_SYMLINK, 0, 0, 0, "/nonexistent/target", NULL },
  { "fifo", F_FIFO, 0640, 1234, 0, NULL, NULL },
  { "caf\xe9", F_FILE, 0644, 0, 0, "latin-1 name\n", NULL },
  { "caf\xc3\xa9", F_FILE, 0644, 0, 0, "utf-8 name\n", NULL },
  { "hardlink-a", F_FILE, 0644, 0, 0, "two names\n", NULL },
  { "usr/hardlink-b", F_HARDLINK, 0, 0, 0, "hardlink-a", NULL },
  { "sparse", F_SPARSE, 0644, 0, 0, NULL, NULL },
  { "big", F_BIG, 0644, 0, 0, NULL, NULL },
};
const guint FIXTURE_LEN = G_N_ELEMENTS (FIXTURE);

static struct timespec
fixture_mtime (guint i)
{
  return (struct timespec){ BASE_SEC + i * 100, 100000000 + i * 1111 };
}

/* Older than the mtime, so a relatime read would move it: the import must
 * neither lose it nor disturb the image. */
static struct timespec
fixture_atime (guint i)
{
  return (struct timespec){ BASE_SEC - 864000 + i, 7 + i };
}

const struct timespec ROOT_TIMES[2] = { { BASE_SEC - 5, 5 }, { BASE_SEC - 1, 999999999 } };

static GBytes *
big_content (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  guint8 *data = g_malloc (BIG_SIZE);
  for (gsize i = 0; i < BIG_SIZE; i++)
    data[i] = g_rand_int (rand) & 0xff;
  return g_bytes_new_take (data, BIG_SIZE);
}

void
write_at (int dfd, const char *name, const void *data, gsize len)
{
  int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, data, len), ==, (gssize)len);
  close (fd);
}

static void
set_user_xattr (int dfd, const char *name, const char *value)
{
  int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  if (fsetxattr (fd, "user.test", value, strlen (value), 0) < 0)
    {
      g_assert_cmpint (errno, ==, EOPNOTSUPP);
      have_user_xattrs = FALSE;
    }
  close (fd);
}

/* Builds FIXTURE below @dfd (an existing, empty directory), then its
 * metadata, deepest entry first so directory times stick. */
static void
build_fixture (int dfd)
{
  g_autoptr (GBytes) big = big_content ();
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    {
      const FixtureEntry *e = &FIXTURE[i];
      switch (e->kind)
        {
        case F_DIR:
          g_assert_no_errno (mkdirat (dfd, e->path, 0700));
          break;
        case F_FILE:
          write_at (dfd, e->path, e->data, strlen (e->data));
          break;
        case F_SPARSE:
          {
            write_at (dfd, e->path, "", 0);
            int fd = openat (dfd, e->path, O_WRONLY | O_CLOEXEC);
            g_assert_no_errno (ftruncate (fd, SPARSE_SIZE));
            char block[SPARSE_DATA_LEN];
            memset (block, 'S', sizeof block);
            g_assert_cmpint (pwrite (fd, block, sizeof block, SPARSE_DATA_OFFSET), ==,
                             sizeof block);
            close (fd);
            break;
          }
        case F_BIG:
          write_at (dfd, e->path, g_bytes_get_data (big, NULL), g_bytes_get_size (big));
          break;
        case F_SYMLINK:
          g_assert_no_errno (symlinkat (e->data, dfd, e->path));
          break;
        case F_FIFO:
          g_assert_no_errno (mkfifoat (dfd, e->path, 0600));
          break;
        case F_HARDLINK:
          g_assert_no_errno (linkat (dfd, e->data, dfd, e->path, 0));
          break;
        }
      if (e->xattr != NULL)
        set_user_xattr (dfd, e->path, e->xattr);
    }
  for (guint i = G_N_ELEMENTS (FIXTURE); i-- > 0;)
    {
      const FixtureEntry *e = &FIXTURE[i];
      if (e->kind == F_HARDLINK)
        continue;
      if (is_root)
        g_assert_no_errno (fchownat (dfd, e->path, e->uid, e->gid, AT_SYMLINK_NOFOLLOW));
      if (e->kind != F_SYMLINK)
        g_assert_no_errno (fchmodat (dfd, e->path, e->mode, 0));
      struct timespec times[2] = { fixture_atime (i), fixture_mtime (i) };
      g_assert_no_errno (utimensat (dfd, e->path, times, AT_SYMLINK_NOFOLLOW));
    }
  g_assert_no_errno (fchmod (dfd, 0755));
  g_assert_no_errno (futimens (dfd, ROOT_TIMES));
}

/* A fixture image directory "image" below @t; returns its path. */
char *
make_fixture_image (Tmp *t)
{
  g_assert_no_errno (mkdirat (t->dfd, "image", 0700));
  int dfd = openat (t->dfd, "image", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  build_fixture (dfd);
  close (dfd);
  return tmp_file (t, "image");
}

void
run_tar (const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  for (const char *const *a = args; *a != NULL; a++)
    if (**a != '\0')
      g_ptr_array_add (argv, (char *)*a);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  int status;
  g_assert_true (g_spawn_sync (NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               &out, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("tar failed: %s\n%s", error->message, err);
}

/* A tar of @image_dir the way image builders make one. @compress: "" or a
 * GNU tar compression option (-z, -J, --zstd). */
char *
make_tar (Tmp *t, const char *image_dir, const char *name, const char *compress)
{
  g_autofree char *out = tmp_file (t, name);
  const char *args[]
      = { "tar", "--xattrs", "--xattrs-include=*", "--sparse",
          /* read the fixture with O_NOATIME: it stays as built */
          "--atime-preserve=system", compress, "-C", image_dir, "-cf", out, ".", NULL };
  run_tar (args);
  return g_steal_pointer (&out);
}

int
open_dir_at (int dfd, const char *name)
{
  int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  return fd;
}

void
import_ok (const char *image, int parent_dfd, const char *dest)
{
  g_autoptr (GError) error = NULL;
  ImportOptions options = IMPORT_OPTIONS_INIT;
  g_assert_true (image_import (image, parent_dfd, dest, &options, &error));
  g_assert_no_error (error);
}

static void
assert_timespec (const char *path, const char *what, struct timespec got, struct timespec want)
{
  if (got.tv_sec != want.tv_sec || got.tv_nsec != want.tv_nsec)
    g_error ("%s: %s is %" G_GINT64_FORMAT ".%09ld, want %" G_GINT64_FORMAT ".%09ld", path, what,
             (gint64)got.tv_sec, got.tv_nsec, (gint64)want.tv_sec, want.tv_nsec);
}

void
collect_paths (int dfd, const char *prefix, GPtrArray *out)
{
  DIR *d = fdopendir (fcntl (dfd, F_DUPFD_CLOEXEC, 3));
  g_assert_nonnull (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      char *path = *prefix ? g_strconcat (prefix, "/", de->d_name, NULL) : g_strdup (de->d_name);
      g_ptr_array_add (out, path);
      if (de->d_type == DT_DIR)
        {
          int child = open_dir_at (dfd, de->d_name);
          collect_paths (child, path, out);
          close (child);
        }
    }
  closedir (d);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* Asserts that the tree below @dfd is FIXTURE, entry by entry. Everything
 * is stat-ed before anything is read, so reading cannot move an atime
 * before it is checked. */
void
assert_fixture_tree (int dfd)
{
  struct stat st[G_N_ELEMENTS (FIXTURE)];
  struct stat root;
  g_assert_no_errno (fstat (dfd, &root));
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    if (fstatat (dfd, FIXTURE[i].path, &st[i], AT_SYMLINK_NOFOLLOW) < 0)
      g_error ("%s: %s", FIXTURE[i].path, g_strerror (errno));

  g_assert_cmpint (root.st_mode & 07777, ==, 0755);
  assert_timespec (".", "mtime", root.st_mtim, ROOT_TIMES[1]);

  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    {
      const FixtureEntry *e = &FIXTURE[i];
      const struct stat *s = &st[i];
      if (e->kind == F_HARDLINK)
        {
          guint target = 0;
          while (strcmp (FIXTURE[target].path, e->data) != 0)
            target++;
          g_assert_true (S_ISREG (s->st_mode));
          g_assert_cmpuint (s->st_ino, ==, st[target].st_ino);
          g_assert_cmpuint (s->st_nlink, ==, 2);
          continue;
        }
      switch (e->kind)
        {
        case F_DIR:
          g_assert_true (S_ISDIR (s->st_mode));
          break;
        case F_SYMLINK:
          g_assert_true (S_ISLNK (s->st_mode));
          break;
        case F_FIFO:
          g_assert_true (S_ISFIFO (s->st_mode));
          break;
        default:
          g_assert_true (S_ISREG (s->st_mode));
          break;
        }
      if (e->kind != F_SYMLINK)
        g_assert_cmpint (s->st_mode & 07777, ==, e->mode);
      g_assert_cmpuint (s->st_uid, ==, is_root ? e->uid : getuid ());
      g_assert_cmpuint (s->st_gid, ==, is_root ? e->gid : getgid ());
      assert_timespec (e->path, "mtime", s->st_mtim, fixture_mtime (i));
      if (e->kind != F_DIR && e->kind != F_SYMLINK)
        assert_timespec (e->path, "atime", s->st_atim, fixture_atime (i));
      if (e->kind == F_SPARSE)
        {
          g_assert_cmpint (s->st_size, ==, SPARSE_SIZE);
          /* The holes stayed holes: a few blocks, not 8 MiB worth. */
          g_assert_cmpint (s->st_blocks * 512, <, 16 * SPARSE_DATA_LEN);
        }
    }

  /* Contents, link targets, xattrs. */
  g_autoptr (GBytes) big = big_content ();
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    {
      const FixtureEntry *e = &FIXTURE[i];
      g_autofree char *contents = NULL;
      gsize len = 0;
      g_autoptr (GError) error = NULL;
      if (e->kind == F_FILE || e->kind == F_BIG || e->kind == F_SPARSE)
        {
          g_assert_true (fs_read_file_at (dfd, e->path, G_MAXSIZE, &contents, &len, &error));
          g_assert_no_error (error);
        }
      if (e->kind == F_FILE)
        g_assert_cmpmem (contents, len, e->data, strlen (e->data));
      else if (e->kind == F_BIG)
        g_assert_cmpmem (contents, len, g_bytes_get_data (big, NULL), BIG_SIZE);
      else if (e->kind == F_SPARSE)
        {
          g_assert_cmpuint (len, ==, SPARSE_SIZE);
          for (gsize j = 0; j < len; j++)
            if (contents[j]
                != ((j >= SPARSE_DATA_OFFSET && j < SPARSE_DATA_OFFSET + SPARSE_DATA_LEN) ? 'S'
                                                                                          : 0))
              g_error ("sparse: wrong byte at %" G_GSIZE_FORMAT, j);
        }
      else if (e->kind == F_SYMLINK)
        {
          char target[256];
          ssize_t n = readlinkat (dfd, e->path, target, sizeof target);
          g_assert_cmpmem (target, n, e->data, strlen (e->data));
        }
      if (e->xattr != NULL && have_user_xattrs)
        {
          int fd = openat (dfd, e->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
          g_assert_cmpint (fd, >=, 0);
          char value[256];
          ssize_t n = fgetxattr (fd, "user.test", value, sizeof value);
          close (fd);
          if (n < 0)
            g_error ("%s: user.test: %s", e->path, g_strerror (errno));
          g_assert_cmpmem (value, n, e->xattr, strlen (e->xattr));
        }
    }

  /* Nothing more, nothing renamed: every name byte for byte. */
  g_autoptr (GPtrArray) got = g_ptr_array_new_with_free_func (g_free);
  collect_paths (dfd, "", got);
  g_ptr_array_sort (got, compare_strings);
  g_autoptr (GPtrArray) want = g_ptr_array_new ();
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    g_ptr_array_add (want, (char *)FIXTURE[i].path);
  g_ptr_array_sort (want, compare_strings);
  g_assert_cmpuint (got->len, ==, want->len);
  for (guint i = 0; i < got->len; i++)
    {
      g_autofree char *g = g_strescape (got->pdata[i], NULL);
      g_autofree char *w = g_strescape (want->pdata[i], NULL);
      g_assert_cmpstr (g, ==, w);
    }
}

/* One line per entry: everything a faithful copy keeps except atime (which
 * reading a directory may move) and block counts (checked on their own). */
static void
describe_tree (GString *out, const char *root, const char *rel)
{
  g_autofree char *dir = *rel ? g_build_filename (root, rel, NULL) : g_strdup (root);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  DIR *d = opendir (dir);
  g_assert_nonnull (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  g_ptr_array_sort (names, compare_strings);

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *relpath
          = *rel ? g_build_filename (rel, names->pdata[i], NULL) : g_strdup (names->pdata[i]);
      g_autofree char *full = g_build_filename (root, relpath, NULL);
      struct stat st;
      g_assert_no_errno (lstat (full, &st));
      g_autofree char *escaped = g_strescape (relpath, NULL);
      g_string_append_printf (out, "%s mode=%o uid=%u gid=%u mtime=%" G_GINT64_FORMAT ".%09ld",
                              escaped, st.st_mode, st.st_uid, st.st_gid, (gint64)st.st_mtim.tv_sec,
                              st.st_mtim.tv_nsec);
      if (!S_ISDIR (st.st_mode))
        g_string_append_printf (out, " nlink=%u", (guint)st.st_nlink);
      if (S_ISREG (st.st_mode))
        {
          g_autofree char *contents = NULL;
          gsize len;
          g_assert_true (g_file_get_contents (full, &contents, &len, NULL));
          g_autofree char *sum
              = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *)contents, len);
          g_string_append_printf (out, " size=%" G_GSIZE_FORMAT " sha256=%s", len, sum);
        }
      if (S_ISLNK (st.st_mode))
        {
          g_autofree char *target = g_file_read_link (full, NULL);
          g_autofree char *t = g_strescape (target, NULL);
          g_string_append_printf (out, " -> %s", t);
        }
      char list[4096];
      ssize_t n = llistxattr (full, list, sizeof list);
      g_assert_cmpint (n, >=, 0);
      g_autoptr (GPtrArray) keys = g_ptr_array_new ();
      for (char *k = list; k < list + n; k += strlen (k) + 1)
        g_ptr_array_add (keys, k);
      g_ptr_array_sort (keys, compare_strings);
      for (guint k = 0; k < keys->len; k++)
        {
          char value[4096];
          ssize_t vn = lgetxattr (full, keys->pdata[k], value, sizeof value);
          g_assert_cmpint (vn, >=, 0);
          g_autofree char *hex
              = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *)value, vn);
          g_string_append_printf (out, " %s=%.16s", (char *)keys->pdata[k], hex);
        }
      g_string_append_c (out, '\n');
      if (S_ISDIR (st.st_mode))
        describe_tree (out, root, relpath);
    }
}

char *
describe (const char *root)
{
  struct stat st;
  g_assert_no_errno (stat (root, &st));
  GString *out = g_string_new (NULL);
  g_string_append_printf (out, ". mode=%o uid=%u gid=%u mtime=%" G_GINT64_FORMAT ".%09ld\n",
                          st.st_mode, st.st_uid, st.st_gid, (gint64)st.st_mtim.tv_sec,
                          st.st_mtim.tv_nsec);
  describe_tree (out, root, "");
  return g_string_free (out, FALSE);
}

/* ---- hand-written tar archives ------------------------------------------------ */

void
tar_add (GByteArray *tar, const char *name, char type, guint mode, const char *linkname,
         const char *data)
{
  guint8 h[512] = { 0 };
  gsize len = data ? strlen (data) : 0;
  g_assert_cmpuint (strlen (name), <, 100);
  memcpy (h, name, strlen (name));
  g_snprintf ((char *)h + 100, 8, "%07o", mode);
  g_snprintf ((char *)h + 108, 8, "%07o", 0);
  g_snprintf ((char *)h + 116, 8, "%07o", 0);
  g_snprintf ((char *)h + 124, 12, "%011o", (guint)len);
  g_snprintf ((char *)h + 136, 12, "%011o", BASE_SEC);
  h[156] = type;
  if (linkname != NULL)
    memcpy (h + 157, linkname, strlen (linkname));
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  memcpy (h + 265, "root", 4);
  memcpy (h + 297, "root", 4);
  memset (h + 148, ' ', 8);
  guint sum = 0;
  for (guint i = 0; i < sizeof h; i++)
    sum += h[i];
  g_snprintf ((char *)h + 148, 8, "%06o", sum);
  g_byte_array_append (tar, h, sizeof h);
  if (len > 0)
    {
      g_byte_array_append (tar, (const guint8 *)data, len);
      static const guint8 zeros[512];
      g_byte_array_append (tar, zeros, (512 - len % 512) % 512);
    }
}

char *
tar_write (Tmp *t, GByteArray *tar, const char *name)
{
  static const guint8 zeros[1024];
  g_byte_array_append (tar, zeros, sizeof zeros);
  g_autofree char *path = tmp_file (t, name);
  g_assert_true (g_file_set_contents (path, (const char *)tar->data, tar->len, NULL));
  return g_steal_pointer (&path);
}

/* ---- deduplication and manifests -------------------------------------------- */

/* Imports @image into @dest with @ref_dest (a tree below @t, or NULL) as the
 * reference and @ref_manifest as its manifest; returns the new manifest. */
Manifest *
import_dedup (Tmp *t, const char *image, const char *dest, const char *ref_dest,
              const Manifest *ref_manifest)
{
  g_autoptr (GError) error = NULL;
  ImportOptions options = IMPORT_OPTIONS_INIT;
  int ref_dfd = ref_dest != NULL ? open_dir_at (t->dfd, ref_dest) : -1;
  options.reference_dfd = ref_dfd;
  options.reference_manifest = ref_manifest;
  Manifest *manifest = NULL;
  g_assert_true (image_import_with_manifest (image, t->dfd, dest, &options, &manifest, &error));
  g_assert_no_error (error);
  g_assert_nonnull (manifest);
  if (ref_dfd >= 0)
    close (ref_dfd);
  return manifest;
}

/* The fixture's regular files, by path (second names of an inode too). */
gboolean
fixture_is_regular (const FixtureEntry *e)
{
  return e->kind == F_FILE || e->kind == F_SPARSE || e->kind == F_BIG || e->kind == F_HARDLINK;
}

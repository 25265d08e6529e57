/* Importing an image: a directory or a tar stream becomes a faithful copy,
 * and a hostile image is refused with the entry named and nothing left
 * behind.
 *
 * Fixture trees are built here, in a g_dir_make_tmp() directory, from one
 * table (FIXTURE); tar images of them are made with GNU tar the way image
 * builders make them (--xattrs --sparse, optionally compressed). Hostile
 * archives are written by hand (ustar headers) because GNU tar refuses to
 * create most of them. Runs as root in CI; as non-root, what needs root
 * (owners, security.capability, device nodes) adapts or is skipped.
 */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "image-import.h"
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

static gboolean is_root;
/* FALSE when the test filesystem has no user.* xattrs (tmpfs before 6.6). */
static gboolean have_user_xattrs = TRUE;

/* ---- temporary directory per test ---------------------------------------- */

typedef struct
{
  char *path;
  int dfd;
} Tmp;

static void
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

static void
tmp_teardown (Tmp *t, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  make_writable (t->dfd);
  close (t->dfd);
  g_assert_true (fs_rm_rf_at (AT_FDCWD, t->path, &error));
  g_assert_no_error (error);
  g_free (t->path);
}

static char *
tmp_file (Tmp *t, const char *name)
{
  return g_build_filename (t->path, name, NULL);
}

static gboolean
exists_at (int dfd, const char *name)
{
  struct stat st;
  return fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- the fixture tree ----------------------------------------------------- */

typedef enum
{
  F_DIR,
  F_FILE,
  F_SPARSE, /* 8 MiB, one 4 KiB data block at 4 MiB */
  F_BIG,    /* 3 MiB + 123 bytes of pseudo-random data: many blocks */
  F_SYMLINK,
  F_FIFO,
  F_HARDLINK, /* data: the earlier entry it is a second name of */
} FixtureKind;

typedef struct
{
  const char *path;
  FixtureKind kind;
  guint mode;
  guint uid, gid; /* as root; as non-root everything is the caller's */
  const char *data;
  const char *xattr; /* value of user.test, or NULL */
} FixtureEntry;

static const FixtureEntry FIXTURE[] = {
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

#define SPARSE_SIZE (8 * 1024 * 1024)
#define SPARSE_DATA_OFFSET (4 * 1024 * 1024)
#define SPARSE_DATA_LEN 4096
#define BIG_SIZE (3 * 1024 * 1024 + 123)
#define BASE_SEC 1600000000

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

static const struct timespec ROOT_TIMES[2] = { { BASE_SEC - 5, 5 }, { BASE_SEC - 1, 999999999 } };

static GBytes *
big_content (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  guint8 *data = g_malloc (BIG_SIZE);
  for (gsize i = 0; i < BIG_SIZE; i++)
    data[i] = g_rand_int (rand) & 0xff;
  return g_bytes_new_take (data, BIG_SIZE);
}

static void
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
static char *
make_fixture_image (Tmp *t)
{
  g_assert_no_errno (mkdirat (t->dfd, "image", 0700));
  int dfd = openat (t->dfd, "image", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  build_fixture (dfd);
  close (dfd);
  return tmp_file (t, "image");
}

static void
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
static char *
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

static int
open_dir_at (int dfd, const char *name)
{
  int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  return fd;
}

static void
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

static void
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
static void
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
          g_assert_true (fs_read_file_at (dfd, e->path, &contents, &len, &error));
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

static char *
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

/* ---- faithful copies -------------------------------------------------------- */

static void
test_directory_copies_tree_faithfully (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  import_ok (image, t->dfd, "deploy");

  int dfd = open_dir_at (t->dfd, "deploy");
  assert_fixture_tree (dfd);
  close (dfd);
  /* Importing reads the image without changing it, atimes included. */
  dfd = open_dir_at (t->dfd, "image");
  assert_fixture_tree (dfd);
  close (dfd);
  g_autofree char *dest = tmp_file (t, "deploy");
  g_autofree char *want = describe (image);
  g_autofree char *got = describe (dest);
  g_assert_cmpstr (got, ==, want);
}

static void
test_tar_yields_same_tree_as_directory (Tmp *t, gconstpointer data)
{
  const char *compress = data;
  if (*compress != '\0')
    {
      const char *program = g_str_equal (compress, "-z")   ? "gzip"
                            : g_str_equal (compress, "-J") ? "xz"
                                                           : "zstd";
      g_autofree char *found = g_find_program_in_path (program);
      if (found == NULL)
        {
          g_test_skip_printf ("%s is not installed", program);
          return;
        }
    }
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", compress);
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");

  int dfd = open_dir_at (t->dfd, "from-tar");
  assert_fixture_tree (dfd);
  close (dfd);
  g_autofree char *from_dir = tmp_file (t, "from-dir");
  g_autofree char *from_tar = tmp_file (t, "from-tar");
  g_autofree char *want = describe (from_dir);
  g_autofree char *got = describe (from_tar);
  g_assert_cmpstr (got, ==, want);
}

typedef struct
{
  char *path;
  GBytes *data;
} FifoFeed;

static gpointer
feed_fifo (gpointer p)
{
  FifoFeed *feed = p;
  int fd = open (feed->path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (feed->data, &len);
  /* The reader may stop at the end-of-archive blocks and close before the
   * padding is written: EPIPE then is fine (SIGPIPE is ignored in main). */
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      data += n;
      len -= n;
    }
  close (fd);
  return NULL;
}

static void
test_tar_streams_from_fifo (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar
      = make_tar (t, image, "image.tar.zst", g_find_program_in_path ("zstd") ? "--zstd" : "");
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (tar, &contents, &len, NULL));

  FifoFeed feed
      = { tmp_file (t, "image.fifo"), g_bytes_new_take (g_steal_pointer (&contents), len) };
  g_assert_no_errno (mkfifo (feed.path, 0600));
  GThread *writer = g_thread_new ("feed-fifo", feed_fifo, &feed);
  import_ok (feed.path, t->dfd, "deploy");
  g_thread_join (writer);

  int dfd = open_dir_at (t->dfd, "deploy");
  assert_fixture_tree (dfd);
  close (dfd);
  g_free (feed.path);
  g_bytes_unref (feed.data);
}

/* Names are bytes: a UTF-8 process locale must not re-encode or mangle a
 * Latin-1 name stored in the archive, nor the other way round. */
static void
test_tar_keeps_non_utf8_names_in_any_locale (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  g_autofree char *old = g_strdup (setlocale (LC_ALL, NULL));
  const char *locales[] = { "C.UTF-8", "C" };
  for (guint i = 0; i < G_N_ELEMENTS (locales); i++)
    {
      if (setlocale (LC_ALL, locales[i]) == NULL)
        continue;
      g_autofree char *dest = g_strdup_printf ("deploy-%u", i);
      import_ok (tar, t->dfd, dest);
      int dfd = open_dir_at (t->dfd, dest);
      g_autofree char *latin1 = NULL, *utf8 = NULL;
      g_assert_true (fs_read_file_at (dfd, "caf\xe9", &latin1, NULL, NULL));
      g_assert_cmpstr (latin1, ==, "latin-1 name\n");
      g_assert_true (fs_read_file_at (dfd, "caf\xc3\xa9", &utf8, NULL, NULL));
      g_assert_cmpstr (utf8, ==, "utf-8 name\n");
      close (dfd);
    }
  setlocale (LC_ALL, old);
}

static void
test_keeps_security_capability (Tmp *t, gconstpointer data)
{
  if (!is_root)
    {
      g_test_skip ("setting security.capability needs root");
      return;
    }
  g_autofree char *setcap = g_find_program_in_path ("setcap");
  if (setcap == NULL)
    {
      g_test_skip ("setcap is not installed (libcap2-bin)");
      return;
    }
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *binary = g_build_filename (image, "usr/bin/caps", NULL);
  /* After the fixture's chown: chown clears capabilities. */
  const char *args[] = { setcap, "cap_net_raw+ep", binary, NULL };
  run_tar (args);
  char want[64];
  ssize_t want_len = lgetxattr (binary, "security.capability", want, sizeof want);
  g_assert_cmpint (want_len, >, 0);

  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");
  const char *dests[] = { "from-dir", "from-tar" };
  for (guint i = 0; i < G_N_ELEMENTS (dests); i++)
    {
      g_autofree char *copy = g_build_filename (t->path, dests[i], "usr/bin/caps", NULL);
      char got[64];
      ssize_t got_len = lgetxattr (copy, "security.capability", got, sizeof got);
      if (got_len < 0)
        g_error ("%s: security.capability: %s", copy, g_strerror (errno));
      g_assert_cmpmem (got, got_len, want, want_len);
      struct stat st;
      g_assert_no_errno (lstat (copy, &st));
      g_assert_cmpuint (st.st_uid, ==, 1234);
      g_assert_cmpint (st.st_mode & 07777, ==, 0750);
    }
}

/* ---- hand-written tar archives ------------------------------------------------ */

static void
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

static char *
tar_write (Tmp *t, GByteArray *tar, const char *name)
{
  static const guint8 zeros[1024];
  g_byte_array_append (tar, zeros, sizeof zeros);
  g_autofree char *path = tmp_file (t, name);
  g_assert_true (g_file_set_contents (path, (const char *)tar->data, tar->len, NULL));
  return g_steal_pointer (&path);
}

typedef struct
{
  const char *test;
  const char *message;
} Hostile;

/* Each archive first writes a harmless entry, so refusing later must also
 * remove what was already written. "%s" in an entry stands for a directory
 * outside the image that must stay empty. */
static void
build_hostile (GByteArray *tar, const char *test, const char *outside)
{
  tar_add (tar, "ok", '0', 0644, NULL, "harmless\n");
  if (g_str_equal (test, "refuses-path-escape"))
    tar_add (tar, "../x", '0', 0644, NULL, "escaped\n");
  else if (g_str_equal (test, "refuses-dotdot-inside-path"))
    tar_add (tar, "usr/../../etc", '5', 0755, NULL, NULL);
  else if (g_str_equal (test, "refuses-absolute-path"))
    tar_add (tar, "/etc/x", '0', 0644, NULL, "absolute\n");
  else if (g_str_equal (test, "refuses-path-through-symlink"))
    {
      tar_add (tar, "a", '2', 0777, outside, NULL);
      tar_add (tar, "a/passwd", '0', 0644, NULL, "pwned\n");
    }
  else if (g_str_equal (test, "refuses-hardlink-leaving-image"))
    tar_add (tar, "h", '1', 0644, "../outside", NULL);
  else if (g_str_equal (test, "refuses-absolute-hardlink"))
    tar_add (tar, "h", '1', 0644, "/etc/passwd", NULL);
  else if (g_str_equal (test, "refuses-hardlink-to-unwritten-entry"))
    {
      tar_add (tar, "h", '1', 0644, "later", NULL);
      tar_add (tar, "later", '0', 0644, NULL, "later\n");
    }
  else if (g_str_equal (test, "refuses-hardlink-to-directory"))
    {
      tar_add (tar, "d/", '5', 0755, NULL, NULL);
      tar_add (tar, "h", '1', 0644, "d", NULL);
    }
  else if (g_str_equal (test, "refuses-char-device"))
    tar_add (tar, "dev/null", '3', 0666, NULL, NULL);
  else if (g_str_equal (test, "refuses-block-device"))
    tar_add (tar, "dev/sda", '4', 0660, NULL, NULL);
  else if (g_str_equal (test, "refuses-replacing-directory"))
    {
      tar_add (tar, "d/", '5', 0755, NULL, NULL);
      tar_add (tar, "d", '0', 0644, NULL, "not a dir\n");
    }
  else if (g_str_equal (test, "refuses-conflicting-duplicate"))
    {
      tar_add (tar, "x", '0', 0644, NULL, "file\n");
      tar_add (tar, "x", '2', 0777, "/etc/shadow", NULL);
    }
  else if (g_str_equal (test, "refuses-path-through-file"))
    {
      tar_add (tar, "f", '0', 0644, NULL, "file\n");
      tar_add (tar, "f/g", '0', 0644, NULL, "below a file\n");
    }
  else if (g_str_equal (test, "escapes-unprintable-names-in-messages"))
    tar_add (tar, "bad\x01name\xff/\"q\"/../x", '0', 0644, NULL, "x\n");
  else
    g_assert_not_reached ();
}

static const Hostile HOSTILE[] = {
  { "refuses-path-escape", "image entry \"../x\": path leaves the image (\"..\")" },
  { "refuses-dotdot-inside-path", "image entry \"usr/../../etc\": path leaves the image (\"..\")" },
  { "refuses-absolute-path", "image entry \"/etc/x\": absolute path" },
  { "refuses-path-through-symlink",
    "image entry \"a/passwd\": path goes through the symlink \"a\"" },
  { "refuses-hardlink-leaving-image",
    "image entry \"h\": hard link target \"../outside\" leaves the image (\"..\")" },
  { "refuses-absolute-hardlink",
    "image entry \"h\": hard link target \"/etc/passwd\" is an absolute path" },
  { "refuses-hardlink-to-unwritten-entry",
    "image entry \"h\": hard link target \"later\" is not an entry written earlier in the image" },
  { "refuses-hardlink-to-directory", "image entry \"h\": hard link target \"d\" is a directory" },
  { "refuses-char-device",
    "image entry \"dev/null\": character device nodes are not allowed in an image" },
  { "refuses-block-device",
    "image entry \"dev/sda\": block device nodes are not allowed in an image" },
  { "refuses-replacing-directory",
    "image entry \"d\": would replace a directory with a regular file" },
  { "refuses-conflicting-duplicate",
    "image entry \"x\": duplicate entry of a different type (a regular file, then a symlink)" },
  { "refuses-path-through-file",
    "image entry \"f/g\": path goes through \"f\", which is a regular file" },
  { "escapes-unprintable-names-in-messages",
    "image entry \"bad\\x01name\\xff/\\\"q\\\"/../x\": path leaves the image (\"..\")" },
};

static void
assert_refused_and_gone (Tmp *t, const char *image, GQuark domain, int code, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, domain, code);
  g_assert_cmpstr (error->message, ==, message);
  g_assert_false (exists_at (t->dfd, "deploy"));
}

static void
test_tar_refuses_hostile_entry (Tmp *t, gconstpointer data)
{
  const Hostile *h = data;
  g_assert_no_errno (mkdirat (t->dfd, "outside", 0700));
  g_autofree char *outside = tmp_file (t, "outside");
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  build_hostile (tar, h->test, outside);
  g_autofree char *path = tar_write (t, tar, "hostile.tar");
  assert_refused_and_gone (t, path, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID, h->message);

  /* Nothing reached the outside either. */
  int dfd = open_dir_at (t->dfd, "outside");
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  collect_paths (dfd, "", paths);
  close (dfd);
  g_assert_cmpuint (paths->len, ==, 0);
}

static void
test_directory_refuses_socket (Tmp *t, gconstpointer data)
{
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  g_autofree char *sock_path = g_build_filename (t->path, "image", "sock", NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_assert_cmpuint (strlen (sock_path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, sock_path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_no_errno (bind (s, (struct sockaddr *)&addr, sizeof addr));
  close (s);
  g_autofree char *image = tmp_file (t, "image");
  assert_refused_and_gone (t, image, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID,
                           "image entry \"sock\": sockets are not allowed in an image");
}

static void
test_directory_refuses_device_node (Tmp *t, gconstpointer data)
{
  if (!is_root)
    {
      g_test_skip ("creating a device node needs root");
      return;
    }
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  g_assert_no_errno (mkdirat (t->dfd, "image/dev", 0755));
  g_assert_no_errno (mknodat (t->dfd, "image/dev/null", S_IFCHR | 0666, makedev (1, 3)));
  g_autofree char *image = tmp_file (t, "image");
  assert_refused_and_gone (
      t, image, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID,
      "image entry \"dev/null\": character device nodes are not allowed in an image");
}

/* `stagehand deploy /` with the sysroot at / would import the deployment
 * into itself, forever. */
static void
test_directory_refuses_to_contain_destination (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  int image_dfd = open_dir_at (t->dfd, "image");
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, image_dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_assert_cmpstr (error->message, ==, "image entry \"deploy\": is the destination of this import");
  g_assert_false (exists_at (image_dfd, "deploy"));
  close (image_dfd);
}

/* ---- the caller's mistakes and broken images -------------------------------- */

static void
test_refuses_existing_destination (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_assert_no_errno (mkdirat (t->dfd, "deploy", 0755));
  write_at (t->dfd, "deploy/keep", "mine\n", 5);
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST);
  g_assert_cmpstr (error->message, ==, "creating deploy: File exists");
  /* Someone else's directory is not ours to clean up. */
  g_assert_true (exists_at (t->dfd, "deploy/keep"));
}

static void
test_names_missing_image (Tmp *t, gconstpointer data)
{
  g_autofree char *image = tmp_file (t, "no-such-image");
  g_autofree char *want = g_strdup_printf ("opening image %s: No such file or directory", image);
  assert_refused_and_gone (t, image, G_FILE_ERROR, G_FILE_ERROR_NOENT, want);
}

static void
test_names_non_archive_file (Tmp *t, gconstpointer data)
{
  write_at (t->dfd, "notes.txt", "these are not the droids\n", 25);
  g_autofree char *image = tmp_file (t, "notes.txt");
  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (image, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_autofree char *prefix = g_strdup_printf ("reading image %s: not a tar archive (", image);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, prefix));
  g_assert_false (exists_at (t->dfd, "deploy"));
}

static void
test_truncated_tar_leaves_nothing (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (tar, &contents, &len, NULL));
  g_autofree char *cut = tmp_file (t, "cut.tar");
  g_assert_true (g_file_set_contents (cut, contents, len * 6 / 10, NULL));

  g_autoptr (GError) error = NULL;
  g_assert_false (image_import (cut, t->dfd, "deploy", NULL, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_INVALID);
  g_test_message ("%s", error->message);
  g_autofree char *names = g_strdup_printf ("reading image %s: ", cut);
  g_assert_nonnull (strstr (error->message, names));
  g_assert_false (exists_at (t->dfd, "deploy"));
}

typedef struct
{
  guint calls;
  guint done_calls;
  ImportProgress last;
} ProgressLog;

static void
log_progress (const ImportProgress *p, gpointer data)
{
  ProgressLog *log = data;
  g_assert_cmpuint (log->done_calls, ==, 0); /* done comes last, once */
  g_assert_cmpuint (p->files, >=, log->last.files);
  g_assert_cmpuint (p->bytes, >=, log->last.bytes);
  log->calls++;
  log->done_calls += p->done;
  log->last = *p;
}

static void
test_reports_progress_and_done (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autofree char *tar = make_tar (t, image, "image.tar", "");
  const char *sources[] = { image, tar };
  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    {
      ProgressLog log = { 0 };
      ImportOptions options = IMPORT_OPTIONS_INIT;
      options.progress = log_progress;
      options.progress_data = &log;
      g_autofree char *dest = g_strdup_printf ("deploy-%u", i);
      g_autoptr (GError) error = NULL;
      g_assert_true (image_import (sources[i], t->dfd, dest, &options, &error));
      g_assert_no_error (error);
      /* the root and every fixture entry, then the final call */
      g_assert_cmpuint (log.last.files, ==, G_N_ELEMENTS (FIXTURE) + 1);
      g_assert_cmpuint (log.calls, ==, G_N_ELEMENTS (FIXTURE) + 2);
      g_assert_cmpuint (log.done_calls, ==, 1);
      g_assert_true (log.last.done);
      g_assert_cmpuint (log.last.bytes, >=, BIG_SIZE + SPARSE_DATA_LEN);
      g_assert_cmpuint (log.last.bytes, <, BIG_SIZE + SPARSE_SIZE);
    }
}

/* ---- tar semantics ------------------------------------------------------------ */

static void
test_tar_later_duplicate_wins (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "x", '0', 0644, NULL, "first\n");
  tar_add (tar, "x", '0', 0600, NULL, "second\n");
  g_autofree char *path = tar_write (t, tar, "dup.tar");
  import_ok (path, t->dfd, "deploy");
  g_autofree char *contents = NULL;
  int dfd = open_dir_at (t->dfd, "deploy");
  g_assert_true (fs_read_file_at (dfd, "x", &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "second\n");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "x", &st, 0));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  close (dfd);
}

static void
test_tar_creates_implicit_parents (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "./a/b/c", '0', 0644, NULL, "deep\n");
  g_autofree char *path = tar_write (t, tar, "parents.tar");
  import_ok (path, t->dfd, "deploy");
  int dfd = open_dir_at (t->dfd, "deploy");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "a/b", &st, AT_SYMLINK_NOFOLLOW));
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0755);
  g_assert_cmpuint (st.st_uid, ==, getuid ());
  g_assert_true (exists_at (dfd, "a/b/c"));
  close (dfd);
}

static void
test_tar_directory_after_contents_gets_its_metadata (Tmp *t, gconstpointer data)
{
  g_autoptr (GByteArray) tar = g_byte_array_new ();
  tar_add (tar, "d/f", '0', 0644, NULL, "first\n");
  tar_add (tar, "d/", '5', 0710, NULL, NULL);
  g_autofree char *path = tar_write (t, tar, "late-dir.tar");
  import_ok (path, t->dfd, "deploy");
  int dfd = open_dir_at (t->dfd, "deploy");
  struct stat st;
  g_assert_no_errno (fstatat (dfd, "d", &st, AT_SYMLINK_NOFOLLOW));
  g_assert_cmpint (st.st_mode & 07777, ==, 0710);
  g_assert_cmpint (st.st_mtim.tv_sec, ==, BASE_SEC);
  close (dfd);
}

/* Deeper than the writer keeps directory fds open for (64): ancestors are
 * closed on the way down and must be re-opened on the way back. */
static void
test_handles_trees_deeper_than_fd_budget (Tmp *t, gconstpointer data)
{
  const guint depth = 150;
  g_assert_no_errno (mkdirat (t->dfd, "image", 0755));
  int dfd = open_dir_at (t->dfd, "image");
  for (guint i = 0; i < depth; i++)
    {
      g_autofree char *content = g_strdup_printf ("level %u\n", i);
      write_at (dfd, "f", content, strlen (content));
      g_assert_no_errno (mkdirat (dfd, "d", 0755));
      int child = open_dir_at (dfd, "d");
      close (dfd);
      dfd = child;
    }
  close (dfd);
  g_autofree char *image = tmp_file (t, "image");
  g_autofree char *tar = make_tar (t, image, "deep.tar", "");
  import_ok (image, t->dfd, "from-dir");
  import_ok (tar, t->dfd, "from-tar");

  const char *dests[] = { "from-dir", "from-tar" };
  for (guint k = 0; k < G_N_ELEMENTS (dests); k++)
    {
      dfd = open_dir_at (t->dfd, dests[k]);
      for (guint i = 0; i < depth; i++)
        {
          g_autofree char *contents = NULL;
          g_assert_true (fs_read_file_at (dfd, "f", &contents, NULL, NULL));
          g_autofree char *want = g_strdup_printf ("level %u\n", i);
          g_assert_cmpstr (contents, ==, want);
          int child = open_dir_at (dfd, "d");
          close (dfd);
          dfd = child;
        }
      close (dfd);
    }
}

/* ---- deduplication and manifests -------------------------------------------- */

/* Imports @image into @dest with @ref_dest (a tree below @t, or NULL) as the
 * reference and @ref_manifest as its manifest; returns the new manifest. */
static Manifest *
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

/* The fixture's regular files, by path (second names of an inode too). */
static gboolean
fixture_is_regular (const FixtureEntry *e)
{
  return e->kind == F_FILE || e->kind == F_SPARSE || e->kind == F_BIG || e->kind == F_HARDLINK;
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

#define CHANGED_FILE "etc/os-release"

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

  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    {
      const FixtureEntry *e = &FIXTURE[i];
      if (!fixture_is_regular (e))
        continue;
      gboolean changed = change != CHANGE_NOTHING && g_str_equal (e->path, CHANGED_FILE);
      ino_t a = inode_at (t, "first", e->path), b = inode_at (t, "second", e->path);
      if (changed && a == b)
        g_error ("%s changed but was linked from the reference", e->path);
      if (!changed && a != b)
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
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    if (fixture_is_regular (&FIXTURE[i]))
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
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
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
  g_assert_true (fs_read_file_at (dfd, "a", &old, NULL, NULL));
  g_assert_cmpstr (old, ==, "old\n");
  close (dfd);
  dfd = open_dir_at (t->dfd, "second");
  g_autofree char *a = NULL, *b = NULL;
  g_assert_true (fs_read_file_at (dfd, "a", &a, NULL, NULL));
  g_assert_true (fs_read_file_at (dfd, "b", &b, NULL, NULL));
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

/* Any byte string other than NUL is a file name: every one round-trips. */
static const char *const WEIRD_NAMES[] = {
  "plain",           "dir/sub/file",     "with space",       "tab\there",
  "new\nline",       "carriage\rreturn", "back\\slash",      "\\x41 looks escaped",
  "caf\xe9",         "caf\xc3\xa9",      "\x01\x7f\x80\xff", "%s%n%x",
  "trailing space ", "-leading-dash",
};

static void
test_manifest_round_trips_any_name (Tmp *t, gconstpointer data)
{
  g_autoptr (Manifest) m = manifest_new ();
  for (guint i = 0; i < G_N_ELEMENTS (WEIRD_NAMES); i++)
    {
      ManifestEntry e = {
        .path = WEIRD_NAMES[i],
        .size = G_MAXUINT64 - i,
        .mode = i % 2 ? 07777 : 0,
        .uid = G_MAXUINT32 - 1,
        .gid = i,
        .mtime_sec = i % 2 ? -1 - (gint64)i : G_MAXINT64 - i,
        .mtime_nsec = 999999999 - i,
      };
      for (guint k = 0; k < MANIFEST_HASH_LEN; k++)
        {
          e.xattr_hash[k] = i + k;
          e.content_hash[k] = 0xff - i - k;
        }
      manifest_set (m, &e);
    }
  gsize len;
  g_autofree char *text = manifest_to_data (m, &len);
  g_assert_cmpuint (strlen (text), ==, len);
  /* One line per entry: no name may break a line or a field. */
  g_autofree char **lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 1 + G_N_ELEMENTS (WEIRD_NAMES) + 1);
  for (guint i = 1; lines[i] != NULL && *lines[i] != '\0'; i++)
    {
      g_auto (GStrv) fields = g_strsplit (lines[i], " ", -1);
      g_assert_cmpuint (g_strv_length (fields), ==, 8);
    }

  g_autoptr (GError) error = NULL;
  g_autoptr (Manifest) parsed = NULL;
  g_assert_true (manifest_parse (text, len, "test", &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (manifest_count (parsed), ==, G_N_ELEMENTS (WEIRD_NAMES));
  for (guint i = 0; i < G_N_ELEMENTS (WEIRD_NAMES); i++)
    {
      const ManifestEntry *want = manifest_lookup (m, WEIRD_NAMES[i]);
      const ManifestEntry *got = manifest_lookup (parsed, WEIRD_NAMES[i]);
      g_assert_nonnull (got);
      g_assert_true (manifest_entry_equal (got, want));
      g_autofree char *escaped = manifest_escape_path (WEIRD_NAMES[i]);
      g_autofree char *back = NULL;
      g_assert_true (manifest_unescape_path (escaped, &back));
      g_assert_cmpstr (back, ==, WEIRD_NAMES[i]);
    }
  gsize again_len;
  g_autofree char *again = manifest_to_data (parsed, &again_len);
  g_assert_cmpstr (again, ==, text);
}

/* The manifest an import returns describes the tree as written, weird names
 * included, and survives the file format. */
static void
test_manifest_of_import_round_trips (Tmp *t, gconstpointer data)
{
  g_autofree char *image = make_fixture_image (t);
  g_autoptr (Manifest) m = import_dedup (t, image, "deploy", NULL, NULL);
  guint regular = 0;
  for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
    if (fixture_is_regular (&FIXTURE[i]))
      {
        const ManifestEntry *e = manifest_lookup (m, FIXTURE[i].path);
        g_assert_nonnull (e);
        struct stat st;
        int dfd = open_dir_at (t->dfd, "deploy");
        g_assert_no_errno (fstatat (dfd, FIXTURE[i].path, &st, AT_SYMLINK_NOFOLLOW));
        close (dfd);
        g_assert_cmpuint (e->size, ==, st.st_size);
        g_assert_cmpuint (e->mode, ==, st.st_mode & 07777);
        g_assert_cmpuint (e->uid, ==, st.st_uid);
        g_assert_cmpuint (e->gid, ==, st.st_gid);
        g_assert_cmpint (e->mtime_sec, ==, st.st_mtim.tv_sec);
        g_assert_cmpuint (e->mtime_nsec, ==, st.st_mtim.tv_nsec);
        regular++;
      }
  g_assert_cmpuint (manifest_count (m), ==, regular);

  g_autofree char *deploy = tmp_file (t, "deploy");
  g_autoptr (GError) error = NULL;
  /* What stage writes (gzip), and plain text: both load the same. */
  gsize file_len, text_len;
  g_autofree char *file_data = manifest_to_file_data (m, &file_len);
  g_autofree char *text = manifest_to_data (m, &text_len);
  g_assert_cmpuint (file_len, >, 2);
  g_assert_cmpuint ((guint8)file_data[0], ==, 0x1f);
  g_assert_cmpuint ((guint8)file_data[1], ==, 0x8b);
  const struct
  {
    const char *data;
    gsize len;
  } forms[] = { { file_data, file_len }, { text, text_len } };
  for (guint f = 0; f < G_N_ELEMENTS (forms); f++)
    {
      g_assert_true (fs_write_file_atomic_at (t->dfd, "deploy.manifest", forms[f].data,
                                              forms[f].len, 0644, FS_WRITE_NONE, &error));
      g_autoptr (Manifest) loaded = NULL;
      g_assert_true (manifest_load_at (t->dfd, "deploy.manifest", &loaded, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (manifest_count (loaded), ==, manifest_count (m));
      for (guint i = 0; i < G_N_ELEMENTS (FIXTURE); i++)
        if (fixture_is_regular (&FIXTURE[i]))
          g_assert_true (manifest_entry_equal (manifest_lookup (loaded, FIXTURE[i].path),
                                               manifest_lookup (m, FIXTURE[i].path)));
    }
  g_autoptr (Manifest) missing = NULL;
  g_assert_true (manifest_load_at (t->dfd, "no.manifest", &missing, &error));
  g_assert_null (missing);
}

static const struct
{
  const char *name;
  const char *text;
} CORRUPT_MANIFESTS[] = {
  { "empty", "" },
  { "wrong-header", "stagehand-manifest 2\n" },
  { "cut-short", "stagehand-manifest 1\na 1 0644 0 0 1.000000000 00000000000000000000000000000000 "
                 "00000000000000000000000000000000" },
  { "missing-field", "stagehand-manifest 1\na 1 0644 0 0 1.000000000 "
                     "00000000000000000000000000000000\n" },
  { "bad-hash", "stagehand-manifest 1\na 1 0644 0 0 1.000000000 "
                "0000000000000000000000000000000g 00000000000000000000000000000000\n" },
  { "upper-case-hash", "stagehand-manifest 1\na 1 0644 0 0 1.000000000 "
                       "0000000000000000000000000000000A 00000000000000000000000000000000\n" },
  { "bad-mode", "stagehand-manifest 1\na 1 0648 0 0 1.000000000 "
                "00000000000000000000000000000000 00000000000000000000000000000000\n" },
  { "short-nsec", "stagehand-manifest 1\na 1 0644 0 0 1.5 "
                  "00000000000000000000000000000000 00000000000000000000000000000000\n" },
  { "raw-space-in-name", "stagehand-manifest 1\na b 1 0644 0 0 1.000000000 "
                         "00000000000000000000000000000000 00000000000000000000000000000000\n" },
  { "escaped-nul", "stagehand-manifest 1\na\\x00 1 0644 0 0 1.000000000 "
                   "00000000000000000000000000000000 00000000000000000000000000000000\n" },
  { "repeated-path",
    "stagehand-manifest 1\n"
    "a 1 0644 0 0 1.000000000 00000000000000000000000000000000 00000000000000000000000000000000\n"
    "a 1 0644 0 0 1.000000000 00000000000000000000000000000000 "
    "00000000000000000000000000000000\n" },
};

static void
test_manifest_refuses_corrupt (Tmp *t, gconstpointer data)
{
  for (guint i = 0; i < G_N_ELEMENTS (CORRUPT_MANIFESTS); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (Manifest) m = NULL;
      const char *text = CORRUPT_MANIFESTS[i].text;
      if (manifest_parse (text, strlen (text), "test.manifest", &m, &error))
        g_error ("%s: parsed", CORRUPT_MANIFESTS[i].name);
      g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT);
      g_assert_true (g_str_has_prefix (error->message, "test.manifest is corrupt"));
    }

  /* The compressed form: cut short, with data after the stream, or not
   * deflate at all after the gzip magic. */
  g_autoptr (Manifest) good = manifest_new ();
  for (guint i = 0; i < 500; i++)
    {
      g_autofree char *path = g_strdup_printf ("usr/lib/file-%u", i);
      ManifestEntry e = { .path = path, .size = i, .mode = 0644, .mtime_sec = i };
      manifest_set (good, &e);
    }
  gsize len;
  g_autofree char *gz = manifest_to_file_data (good, &len);
  g_autofree char *trailing = g_malloc (len + 4);
  memcpy (trailing, gz, len);
  memcpy (trailing + len, "junk", 4);
  const struct
  {
    const char *name;
    const char *data;
    gsize len;
  } bad[] = {
    { "gzip-cut-short", gz, len / 2 },
    { "gzip-without-trailer", gz, len - 4 },
    { "gzip-then-junk", trailing, len + 4 },
    { "gzip-magic-only", "\x1f\x8b\x08\x00garbage", 12 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (Manifest) m = NULL;
      if (manifest_parse (bad[i].data, bad[i].len, "test.manifest", &m, &error))
        g_error ("%s: parsed", bad[i].name);
      g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT);
      g_assert_true (g_str_has_prefix (error->message, "test.manifest is corrupt"));
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (Manifest) parsed = NULL;
  g_assert_true (manifest_parse (gz, len, "test.manifest", &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (manifest_count (parsed), ==, 500);
}

int
main (int argc, char **argv)
{
  /* The FIFO feeder may write after the importer stopped reading. */
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);
  is_root = geteuid () == 0;

  g_test_add ("/import/directory/copies-tree-faithfully", Tmp, NULL, tmp_setup,
              test_directory_copies_tree_faithfully, tmp_teardown);
  g_test_add ("/import/tar/yields-same-tree-as-directory", Tmp, "", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/gzip-yields-same-tree", Tmp, "-z", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/xz-yields-same-tree", Tmp, "-J", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/zstd-yields-same-tree", Tmp, "--zstd", tmp_setup,
              test_tar_yields_same_tree_as_directory, tmp_teardown);
  g_test_add ("/import/tar/streams-from-fifo", Tmp, NULL, tmp_setup, test_tar_streams_from_fifo,
              tmp_teardown);
  g_test_add ("/import/tar/keeps-non-utf8-names-in-any-locale", Tmp, NULL, tmp_setup,
              test_tar_keeps_non_utf8_names_in_any_locale, tmp_teardown);
  g_test_add ("/import/keeps-security-capability", Tmp, NULL, tmp_setup,
              test_keeps_security_capability, tmp_teardown);
  for (guint i = 0; i < G_N_ELEMENTS (HOSTILE); i++)
    {
      g_autofree char *name = g_strdup_printf ("/import/tar/%s", HOSTILE[i].test);
      g_test_add (name, Tmp, &HOSTILE[i], tmp_setup, test_tar_refuses_hostile_entry, tmp_teardown);
    }
  g_test_add ("/import/directory/refuses-socket", Tmp, NULL, tmp_setup,
              test_directory_refuses_socket, tmp_teardown);
  g_test_add ("/import/directory/refuses-device-node", Tmp, NULL, tmp_setup,
              test_directory_refuses_device_node, tmp_teardown);
  g_test_add ("/import/directory/refuses-to-contain-destination", Tmp, NULL, tmp_setup,
              test_directory_refuses_to_contain_destination, tmp_teardown);
  g_test_add ("/import/refuses-existing-destination", Tmp, NULL, tmp_setup,
              test_refuses_existing_destination, tmp_teardown);
  g_test_add ("/import/names-missing-image", Tmp, NULL, tmp_setup, test_names_missing_image,
              tmp_teardown);
  g_test_add ("/import/names-non-archive-file", Tmp, NULL, tmp_setup, test_names_non_archive_file,
              tmp_teardown);
  g_test_add ("/import/tar/truncated-archive-leaves-nothing", Tmp, NULL, tmp_setup,
              test_truncated_tar_leaves_nothing, tmp_teardown);
  g_test_add ("/import/reports-progress-and-done", Tmp, NULL, tmp_setup,
              test_reports_progress_and_done, tmp_teardown);
  g_test_add ("/import/tar/later-duplicate-wins", Tmp, NULL, tmp_setup,
              test_tar_later_duplicate_wins, tmp_teardown);
  g_test_add ("/import/tar/creates-implicit-parents", Tmp, NULL, tmp_setup,
              test_tar_creates_implicit_parents, tmp_teardown);
  g_test_add ("/import/tar/directory-after-contents-gets-its-metadata", Tmp, NULL, tmp_setup,
              test_tar_directory_after_contents_gets_its_metadata, tmp_teardown);
  g_test_add ("/import/handles-trees-deeper-than-fd-budget", Tmp, NULL, tmp_setup,
              test_handles_trees_deeper_than_fd_budget, tmp_teardown);
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
  g_test_add ("/import/manifest/round-trips-any-name", Tmp, NULL, tmp_setup,
              test_manifest_round_trips_any_name, tmp_teardown);
  g_test_add ("/import/manifest/of-import-describes-the-tree", Tmp, NULL, tmp_setup,
              test_manifest_of_import_round_trips, tmp_teardown);
  g_test_add ("/import/manifest/refuses-corrupt", Tmp, NULL, tmp_setup,
              test_manifest_refuses_corrupt, tmp_teardown);
  return g_test_run ();
}

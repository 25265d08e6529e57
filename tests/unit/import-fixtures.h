/* Fixtures of the image import tests: a temporary directory per test, the
 * fixture tree (FIXTURE) and its checks, tar images of it and hand-written
 * archives. See import-fixtures.c. */
#pragma once

#include "image-import.h"
#include "manifest.h"

#include <glib.h>
#include <sys/types.h>
#include <time.h>

extern gboolean is_root;
/* FALSE when the test filesystem has no user.* xattrs (tmpfs before 6.6). */
extern gboolean have_user_xattrs;

typedef struct
{
  char *path;
  int dfd;
} Tmp;

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

extern const FixtureEntry FIXTURE[];
/* The number of rows in FIXTURE (its length is known only where it is defined). */
extern const guint FIXTURE_LEN;
/* The fixture root's atime and mtime. */
extern const struct timespec ROOT_TIMES[2];

#define SPARSE_SIZE (8 * 1024 * 1024)
#define SPARSE_DATA_OFFSET (4 * 1024 * 1024)
#define SPARSE_DATA_LEN 4096
#define BIG_SIZE (3 * 1024 * 1024 + 123)
#define BASE_SEC 1600000000

void tmp_setup (Tmp *t, gconstpointer data);
void tmp_teardown (Tmp *t, gconstpointer data);
char *tmp_file (Tmp *t, const char *name);
gboolean exists_at (int dfd, const char *name);

void write_at (int dfd, const char *name, const void *data, gsize len);
char *make_fixture_image (Tmp *t);
void run_tar (const char *const *args);
char *make_tar (Tmp *t, const char *image_dir, const char *name, const char *compress);
int open_dir_at (int dfd, const char *name);
void import_ok (const char *image, int parent_dfd, const char *dest);
void collect_paths (int dfd, const char *prefix, GPtrArray *out);
void assert_fixture_tree (int dfd);
char *describe (const char *root);

void tar_add (GByteArray *tar, const char *name, char type, guint mode, const char *linkname,
              const char *data);
char *tar_write (Tmp *t, GByteArray *tar, const char *name);

Manifest *import_dedup (Tmp *t, const char *image, const char *dest, const char *ref_dest,
                        const Manifest *ref_manifest);
gboolean fixture_is_regular (const FixtureEntry *e);

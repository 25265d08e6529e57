/* The manifest: any file name round-trips through its format, the one an
 * import returns describes the tree it wrote, and a corrupt one (text or
 * gzip) is refused. The fixtures are in import-fixtures.c.
 */
#include "config.h"

#include "errors.h"
#include "fsutil.h"
#include "import-fixtures.h"
#include "manifest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
  for (guint i = 0; i < FIXTURE_LEN; i++)
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
      for (guint i = 0; i < FIXTURE_LEN; i++)
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
  { "wrong-header", "stagehand-manifest 3\n" },
  { "directory-line-in-version-1",
    "stagehand-manifest 1\netc d 0755 0 0 00000000000000000000000000000000\n" },
  { "directory-line-missing-field",
    "stagehand-manifest 2\netc d 0755 0 00000000000000000000000000000000\n" },
  { "symlink-line-bad-target",
    "stagehand-manifest 2\netc/l l 0 0 00000000000000000000000000000000 a\\x00b\n" },
  { "unknown-type", "stagehand-manifest 2\netc x 0755 0 0 00000000000000000000000000000000\n" },
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
  g_test_init (&argc, &argv, NULL);
  is_root = geteuid () == 0;

  g_test_add ("/import/manifest/round-trips-any-name", Tmp, NULL, tmp_setup,
              test_manifest_round_trips_any_name, tmp_teardown);
  g_test_add ("/import/manifest/of-import-describes-the-tree", Tmp, NULL, tmp_setup,
              test_manifest_of_import_round_trips, tmp_teardown);
  g_test_add ("/import/manifest/refuses-corrupt", Tmp, NULL, tmp_setup,
              test_manifest_refuses_corrupt, tmp_teardown);
  return g_test_run ();
}

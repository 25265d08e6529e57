/* The /etc merge, rule by rule: three directories stand for the booted
 * image's pristine /etc (read as the merge reads it, through a manifest),
 * the running /etc and the new image's /etc; the merge writes into the
 * last, and each test checks what it then holds and what the plan says.
 * The "after stage" tests change the running /etc once more and run the
 * finalize's top-up.
 */
#include "config.h"

#include "errors.h"
#include "etc-merge.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

typedef struct
{
  char *path;
  int dfd;
  int pristine, running, new_etc; /* dir fds */
  EtcTree *o, *r, *n;             /* the trees of the last merge */
  EtcMergePlan *plan;
} Fixture;

static void
put (int dfd, const char *path, const char *content, mode_t mode)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (strcmp (dir, ".") != 0)
    {
      g_auto (GStrv) parts = g_strsplit (dir, "/", 0);
      GString *sofar = g_string_new (NULL);
      for (char **p = parts; *p; p++)
        {
          if (sofar->len)
            g_string_append_c (sofar, '/');
          g_string_append (sofar, *p);
          g_assert_no_errno (mkdirat (dfd, sofar->str, 0755) < 0 && errno != EEXIST ? -1 : 0);
        }
      g_string_free (sofar, TRUE);
    }
  (void)unlinkat (dfd, path, 0);
  int fd = openat (dfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, content, strlen (content)), ==, (ssize_t)strlen (content));
  g_assert_no_errno (fchmod (fd, mode));
  close (fd);
}

static char *
get (int dfd, const char *path)
{
  g_autofree char *data = NULL;
  gsize len;
  g_autoptr (GError) error = NULL;
  if (!fs_read_file_at_optional (dfd, path, FS_READ_MAX_SMALL, &data, &len, &error))
    return g_strdup_printf ("<%s>", error->message);
  return data ? g_steal_pointer (&data) : NULL;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->path = g_dir_make_tmp ("test-etc-merge-XXXXXX", NULL);
  g_assert_nonnull (f->path);
  f->dfd = open (f->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const char *names[] = { "pristine", "running", "new" };
  int *fds[] = { &f->pristine, &f->running, &f->new_etc };
  for (guint i = 0; i < 3; i++)
    {
      g_assert_no_errno (mkdirat (f->dfd, names[i], 0755));
      *fds[i] = openat (f->dfd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      /* The same /etc in all three to start with. */
      put (*fds[i], "hostname", "image\n", 0644);
      put (*fds[i], "motd", "welcome\n", 0644);
      put (*fds[i], "issue", "Debian 12\n", 0644);
      put (*fds[i], "ssh/sshd_config", "Port 22\n", 0600);
      put (*fds[i], "default/grub", "GRUB_TIMEOUT=5\n", 0644);
      g_assert_no_errno (symlinkat ("/usr/share/zoneinfo/UTC", *fds[i], "localtime"));
    }
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->plan, etc_merge_plan_free);
  g_clear_pointer (&f->o, etc_tree_free);
  g_clear_pointer (&f->r, etc_tree_free);
  g_clear_pointer (&f->n, etc_tree_free);
  close (f->pristine);
  close (f->running);
  close (f->new_etc);
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (AT_FDCWD, f->path, &error));
  close (f->dfd);
  g_free (f->path);
}

/* The pristine /etc as stage records it and the merge reads it back: into
 * a manifest, through its text, out again. */
static EtcTree *
pristine_via_manifest (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EtcTree) scanned = NULL;
  g_assert_true (etc_tree_scan (f->pristine, "pristine", NULL, &scanned, &error));
  g_autoptr (Manifest) m = manifest_new ();
  g_assert_true (etc_tree_add_to_manifest (scanned, f->pristine, m, &error));
  gsize len;
  g_autofree char *data = manifest_to_file_data (m, &len);
  g_autoptr (Manifest) parsed = NULL;
  g_assert_true (manifest_parse (data, len, "manifest", &parsed, &error));
  EtcTree *tree = etc_tree_from_manifest (parsed);
  g_assert_nonnull (tree);
  g_assert_cmpuint (etc_tree_count (tree), ==, etc_tree_count (scanned));
  return tree;
}

/* The stage's merge. */
static void
merge (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  f->o = pristine_via_manifest (f);
  g_assert_true (etc_tree_scan (f->running, "running", NULL, &f->r, &error));
  g_assert_true (etc_tree_scan (f->new_etc, "new", NULL, &f->n, &error));
  f->plan = etc_merge_plan (f->o, f->r, f->n);
  g_assert_true (
      etc_merge_apply (f->running, f->new_etc, f->dfd, f->plan, f->r, f->n, NULL, NULL, &error));
}

/* The finalize's top-up, after more changes to the running /etc. */
static void
top_up (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EtcTree) r2 = NULL;
  g_assert_true (etc_tree_scan (f->running, "running", f->r, &r2, &error));
  g_autoptr (EtcMergePlan) plan2 = etc_merge_plan (f->o, r2, f->n);
  g_assert_true (
      etc_merge_apply (f->running, f->new_etc, f->dfd, plan2, r2, f->n, f->plan, f->r, &error));
  etc_merge_plan_free (f->plan);
  f->plan = g_steal_pointer (&plan2);
  etc_tree_free (f->r);
  f->r = g_steal_pointer (&r2);
}

static const EtcMergeItem *
item (Fixture *f, const char *path)
{
  return g_hash_table_lookup (f->plan->by_path, path);
}

static void
assert_item (Fixture *f, const char *path, char change, gboolean conflict)
{
  const EtcMergeItem *it = item (f, path);
  g_assert_nonnull (it);
  g_assert_cmpint (it->change, ==, change);
  g_assert_cmpint (it->conflict, ==, conflict);
}

static void
assert_content (int dfd, const char *path, const char *want)
{
  g_autofree char *got = get (dfd, path);
  g_assert_cmpstr (got, ==, want);
}

static mode_t
mode_of (int dfd, const char *path)
{
  struct stat st;
  g_assert_no_errno (fstatat (dfd, path, &st, AT_SYMLINK_NOFOLLOW));
  return st.st_mode;
}

static gboolean
exists (int dfd, const char *path)
{
  struct stat st;
  return fstatat (dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
test_untouched_paths_take_the_new_image (Fixture *f, gconstpointer data)
{
  put (f->new_etc, "issue", "Debian 13\n", 0644);
  put (f->new_etc, "new-in-v2", "new\n", 0644);
  g_assert_no_errno (unlinkat (f->new_etc, "motd", 0));
  merge (f);
  assert_content (f->new_etc, "issue", "Debian 13\n");
  assert_content (f->new_etc, "new-in-v2", "new\n");
  g_assert_false (exists (f->new_etc, "motd"));
  g_assert_cmpuint (f->plan->n_changes, ==, 0);
  g_assert_cmpuint (f->plan->n_conflicts, ==, 0);
}

static void
test_modified_file_is_carried (Fixture *f, gconstpointer data)
{
  put (f->running, "hostname", "web1\n", 0644);
  merge (f);
  assert_content (f->new_etc, "hostname", "web1\n");
  assert_item (f, "hostname", 'M', FALSE);
  g_assert_cmpuint (f->plan->n_changes, ==, 1);
}

static void
test_added_file_is_carried (Fixture *f, gconstpointer data)
{
  put (f->running, "stagehand-test.conf", "a=1\n", 0640);
  put (f->running, "added/dir/deep.conf", "deep\n", 0644);
  merge (f);
  assert_content (f->new_etc, "stagehand-test.conf", "a=1\n");
  g_assert_cmpint (mode_of (f->new_etc, "stagehand-test.conf") & 07777, ==, 0640);
  assert_content (f->new_etc, "added/dir/deep.conf", "deep\n");
  assert_item (f, "stagehand-test.conf", 'A', FALSE);
  assert_item (f, "added", 'A', FALSE);
  assert_item (f, "added/dir/deep.conf", 'A', FALSE);
}

static void
test_removed_file_stays_removed (Fixture *f, gconstpointer data)
{
  g_assert_no_errno (unlinkat (f->running, "motd", 0));
  merge (f);
  g_assert_false (exists (f->new_etc, "motd"));
  assert_item (f, "motd", 'D', FALSE);
}

static void
test_mode_only_change_is_carried (Fixture *f, gconstpointer data)
{
  g_assert_no_errno (fchmodat (f->running, "issue", 0600, 0));
  merge (f);
  g_assert_cmpint (mode_of (f->new_etc, "issue") & 07777, ==, 0600);
  assert_content (f->new_etc, "issue", "Debian 12\n");
  assert_item (f, "issue", 'M', FALSE);
}

static void
test_owner_only_change_is_carried (Fixture *f, gconstpointer data)
{
  if (geteuid () != 0)
    {
      g_test_skip ("changing an owner needs root");
      return;
    }
  g_assert_no_errno (fchownat (f->running, "issue", 4242, 4343, AT_SYMLINK_NOFOLLOW));
  merge (f);
  struct stat st;
  g_assert_no_errno (fstatat (f->new_etc, "issue", &st, AT_SYMLINK_NOFOLLOW));
  g_assert_cmpuint (st.st_uid, ==, 4242);
  g_assert_cmpuint (st.st_gid, ==, 4343);
  assert_item (f, "issue", 'M', FALSE);
}

static void
test_xattr_only_change_is_carried (Fixture *f, gconstpointer data)
{
  int fd = openat (f->running, "issue", O_RDONLY | O_CLOEXEC);
  if (fsetxattr (fd, "user.stagehand", "v1", 2, 0) < 0 && errno == ENOTSUP)
    {
      close (fd);
      g_test_skip ("no user.* xattrs on this filesystem");
      return;
    }
  close (fd);
  merge (f);
  fd = openat (f->new_etc, "issue", O_RDONLY | O_CLOEXEC);
  char value[8] = { 0 };
  g_assert_cmpint (fgetxattr (fd, "user.stagehand", value, sizeof value), ==, 2);
  close (fd);
  g_assert_cmpstr (value, ==, "v1");
  assert_item (f, "issue", 'M', FALSE);
}

static void
test_retargeted_symlink_is_carried (Fixture *f, gconstpointer data)
{
  g_assert_no_errno (unlinkat (f->running, "localtime", 0));
  g_assert_no_errno (symlinkat ("/usr/share/zoneinfo/Europe/Berlin", f->running, "localtime"));
  merge (f);
  char target[64] = { 0 };
  g_assert_cmpint (readlinkat (f->new_etc, "localtime", target, sizeof target - 1), >, 0);
  g_assert_cmpstr (target, ==, "/usr/share/zoneinfo/Europe/Berlin");
  assert_item (f, "localtime", 'M', FALSE);
}

static void
test_file_that_became_a_directory_is_carried (Fixture *f, gconstpointer data)
{
  g_assert_no_errno (unlinkat (f->running, "motd", 0));
  put (f->running, "motd/10-local", "hi\n", 0644);
  merge (f);
  g_assert_true (S_ISDIR (mode_of (f->new_etc, "motd")));
  assert_content (f->new_etc, "motd/10-local", "hi\n");
  assert_item (f, "motd", 'M', FALSE);
  assert_item (f, "motd/10-local", 'A', FALSE);
}

static void
test_directory_that_became_a_file_is_carried (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (f->running, "default", &error));
  put (f->running, "default", "a file now\n", 0644);
  merge (f);
  assert_content (f->new_etc, "default", "a file now\n");
  assert_item (f, "default", 'M', FALSE);
  /* What was below it is gone with it, and says so. */
  assert_item (f, "default/grub", 'D', FALSE);
}

static void
test_both_sides_changed_keeps_local_and_new_beside (Fixture *f, gconstpointer data)
{
  put (f->running, "issue", "local banner\n", 0644);
  put (f->new_etc, "issue", "Debian 13\n", 0644);
  merge (f);
  assert_content (f->new_etc, "issue", "local banner\n");
  assert_content (f->new_etc, "issue" ETC_MERGE_NEW_SUFFIX, "Debian 13\n");
  assert_item (f, "issue", 'M', TRUE);
  g_assert_true (item (f, "issue")->new_beside);
  g_assert_cmpuint (f->plan->n_conflicts, ==, 1);
}

static void
test_file_versus_directory_conflict_never_fails (Fixture *f, gconstpointer data)
{
  /* Locally a directory, in the new image a changed file... */
  g_assert_no_errno (unlinkat (f->running, "motd", 0));
  put (f->running, "motd/10-local", "hi\n", 0644);
  put (f->new_etc, "motd", "new welcome\n", 0644);
  /* ...and locally a file, in the new image a directory with more in it. */
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (f->running, "default", &error));
  put (f->running, "default", "a file now\n", 0644);
  put (f->new_etc, "default/keyboard", "XKBLAYOUT=us\n", 0644);
  merge (f);
  assert_content (f->new_etc, "motd/10-local", "hi\n");
  assert_content (f->new_etc, "motd" ETC_MERGE_NEW_SUFFIX, "new welcome\n");
  assert_item (f, "motd", 'M', TRUE);
  /* The new image's directory was not changed itself, only what is in it:
   * the local file wins without a conflict of its own at "default". */
  assert_content (f->new_etc, "default", "a file now\n");
}

static void
test_removed_by_new_image_but_changed_locally_is_kept (Fixture *f, gconstpointer data)
{
  put (f->running, "motd", "local motd\n", 0644);
  g_assert_no_errno (unlinkat (f->new_etc, "motd", 0));
  /* A whole directory the new image dropped, with a local change in it. */
  put (f->running, "default/grub", "GRUB_TIMEOUT=1\n", 0644);
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (f->new_etc, "default", &error));
  merge (f);
  assert_content (f->new_etc, "motd", "local motd\n");
  g_assert_false (exists (f->new_etc, "motd" ETC_MERGE_NEW_SUFFIX));
  assert_item (f, "motd", 'M', TRUE);
  assert_content (f->new_etc, "default/grub", "GRUB_TIMEOUT=1\n");
  assert_item (f, "default", 0, TRUE);
}

static void
test_removed_locally_but_changed_by_new_image (Fixture *f, gconstpointer data)
{
  g_assert_no_errno (unlinkat (f->running, "issue", 0));
  put (f->new_etc, "issue", "Debian 13\n", 0644);
  merge (f);
  g_assert_false (exists (f->new_etc, "issue"));
  assert_content (f->new_etc, "issue" ETC_MERGE_NEW_SUFFIX, "Debian 13\n");
  assert_item (f, "issue", 'D', TRUE);
}

static void
test_socket_is_not_carried (Fixture *f, gconstpointer data)
{
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_autofree char *sock = g_build_filename (f->path, "running", "control.sock", NULL);
  if (strlen (sock) >= sizeof addr.sun_path)
    {
      close (s);
      g_test_skip ("temporary directory path too long for a socket");
      return;
    }
  strcpy (addr.sun_path, sock);
  g_assert_no_errno (bind (s, (struct sockaddr *)&addr, sizeof addr));
  g_assert_no_errno (mkfifoat (f->running, "initctl", 0600));
  merge (f);
  close (s);
  g_assert_false (exists (f->new_etc, "control.sock"));
  g_assert_false (exists (f->new_etc, "initctl"));
  g_assert_null (item (f, "control.sock"));
  g_assert_cmpuint (f->plan->n_changes, ==, 0);
}

static void
test_names_that_are_not_utf8 (Fixture *f, gconstpointer data)
{
  put (f->running, "caf\xe9.conf", "latin-1\n", 0644);
  put (f->running, "new\nline", "x\n", 0644);
  put (f->pristine, "\xff\xfe", "image\n", 0644);
  put (f->running, "\xff\xfe", "local\n", 0644);
  put (f->new_etc, "\xff\xfe", "v2\n", 0644);
  merge (f);
  assert_content (f->new_etc, "caf\xe9.conf", "latin-1\n");
  assert_content (f->new_etc, "new\nline", "x\n");
  assert_content (f->new_etc, "\xff\xfe", "local\n");
  assert_content (f->new_etc, "\xff\xfe" ETC_MERGE_NEW_SUFFIX, "v2\n");
  assert_item (f, "caf\xe9.conf", 'A', FALSE);
  g_autofree char *shown = etc_merge_display_path ("caf\xe9.conf");
  g_assert_cmpstr (shown, ==, "/etc/caf\\xe9.conf");
  g_assert_true (g_utf8_validate (shown, -1, NULL));
}

static void
test_without_pristine_local_differences_win (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  put (f->running, "hostname", "web1\n", 0644);
  put (f->new_etc, "issue", "Debian 13\n", 0644);
  g_assert_no_errno (unlinkat (f->running, "motd", 0));
  g_autoptr (EtcTree) r = NULL;
  g_autoptr (EtcTree) n = NULL;
  g_assert_true (etc_tree_scan (f->running, "running", NULL, &r, &error));
  g_assert_true (etc_tree_scan (f->new_etc, "new", NULL, &n, &error));
  g_autoptr (EtcMergePlan) plan = etc_merge_plan (NULL, r, n);
  g_assert_true (etc_merge_apply (f->running, f->new_etc, f->dfd, plan, r, n, NULL, NULL, &error));
  assert_content (f->new_etc, "hostname", "web1\n");
  /* Unknown pristine: the running "Debian 12" differs from the new image's
   * and wins; a removal cannot be told from an addition, so motd stays. */
  assert_content (f->new_etc, "issue", "Debian 12\n");
  assert_content (f->new_etc, "motd", "welcome\n");
  g_assert_cmpuint (plan->n_conflicts, ==, 0);
}

static void
test_changes_after_stage_are_topped_up (Fixture *f, gconstpointer data)
{
  put (f->running, "stagehand-test.conf", "a=1\n", 0644);
  put (f->running, "hostname", "web1\n", 0644);
  put (f->running, "issue", "local banner\n", 0644);
  put (f->new_etc, "issue", "Debian 13\n", 0644);
  merge (f);
  /* After the stage: edited again, a change undone, a new file, a removal,
   * and the conflict resolved by taking the image's pristine version back. */
  put (f->running, "stagehand-test.conf", "a=2\n", 0644);
  put (f->running, "hostname", "image\n", 0644);
  put (f->running, "later.conf", "later\n", 0644);
  g_assert_no_errno (unlinkat (f->running, "motd", 0));
  put (f->running, "issue", "Debian 12\n", 0644);
  top_up (f);
  assert_content (f->new_etc, "stagehand-test.conf", "a=2\n");
  assert_content (f->new_etc, "hostname", "image\n");
  assert_content (f->new_etc, "later.conf", "later\n");
  g_assert_false (exists (f->new_etc, "motd"));
  assert_content (f->new_etc, "issue", "Debian 13\n");
  g_assert_false (exists (f->new_etc, "issue" ETC_MERGE_NEW_SUFFIX));
  g_assert_cmpuint (f->plan->n_conflicts, ==, 0);
}

static void
test_directory_added_then_removed_after_stage (Fixture *f, gconstpointer data)
{
  put (f->running, "added/dir/deep.conf", "deep\n", 0644);
  g_assert_no_errno (unlinkat (f->running, "default/grub", 0));
  merge (f);
  assert_content (f->new_etc, "added/dir/deep.conf", "deep\n");
  /* After the stage: the added directory goes again, and the directory
   * the removed file was in becomes a file. */
  g_autoptr (GError) error = NULL;
  g_assert_true (fs_rm_rf_at (f->running, "added", &error));
  g_assert_true (fs_rm_rf_at (f->running, "default", &error));
  put (f->running, "default", "a file now\n", 0644);
  top_up (f);
  g_assert_false (exists (f->new_etc, "added"));
  assert_content (f->new_etc, "default", "a file now\n");
  g_assert_cmpuint (f->plan->n_conflicts, ==, 0);
}

static void
test_top_up_reads_only_what_changed (Fixture *f, gconstpointer data)
{
  merge (f);
  /* Same size and the same times as at stage, different bytes: a change
   * stat cannot see is not re-read, which is how the top-up avoids
   * reading all of /etc. The inode's ctime moves on any write, so this
   * only holds in the test's doctored form: the previous scan's entry
   * gets this inode's current stat fields. */
  const EtcEntry *before = etc_tree_lookup (f->r, "issue");
  g_assert_nonnull (before);
  g_autoptr (GError) error = NULL;
  g_autoptr (EtcTree) r2 = NULL;
  g_assert_true (etc_tree_scan (f->running, "running", f->r, &r2, &error));
  g_assert_true (etc_entry_equal (etc_tree_lookup (r2, "issue"), before));
  EtcEntry doctored = *before;
  memset (doctored.content_hash, 0xab, sizeof doctored.content_hash);
  etc_tree_add (f->r, &doctored);
  g_autoptr (EtcTree) r3 = NULL;
  g_assert_true (etc_tree_scan (f->running, "running", f->r, &r3, &error));
  g_assert_cmpint (etc_tree_lookup (r3, "issue")->content_hash[0], ==, 0xab);
}

static void
test_state_round_trips (Fixture *f, gconstpointer data)
{
  put (f->running, "caf\xe9 with space", "x\n", 0644);
  g_assert_no_errno (symlinkat ("odd target\n", f->running, "link"));
  merge (f);
  EtcMergeState state = { .pristine = f->o, .running = f->r, .new_tree = f->n };
  gsize len;
  g_autofree char *data_ = etc_merge_state_to_data (&state, &len);
  g_autoptr (GError) error = NULL;
  g_autoptr (EtcMergeState) parsed = NULL;
  g_assert_true (etc_merge_state_parse (data_, len, "state", &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (etc_tree_count (parsed->running), ==, etc_tree_count (f->r));
  const EtcEntry *a = etc_tree_lookup (parsed->running, "caf\xe9 with space");
  g_assert_true (etc_entry_equal (a, etc_tree_lookup (f->r, "caf\xe9 with space")));
  g_assert_cmpuint (a->ino, ==, etc_tree_lookup (f->r, "caf\xe9 with space")->ino);
  g_assert_cmpstr (etc_tree_lookup (parsed->running, "link")->target, ==, "odd target\n");
  g_assert_cmpuint (etc_tree_count (parsed->pristine), ==, etc_tree_count (f->o));

  EtcMergeState unknown = { .pristine = NULL, .running = f->r, .new_tree = f->n };
  g_autofree char *data2 = etc_merge_state_to_data (&unknown, &len);
  g_autoptr (EtcMergeState) parsed2 = NULL;
  g_assert_true (etc_merge_state_parse (data2, len, "state", &parsed2, &error));
  g_assert_null (parsed2->pristine);

  g_autoptr (EtcMergeState) bad = NULL;
  g_assert_false (etc_merge_state_parse (data_, len / 2, "cut.etc-state", &bad, &error));
  g_assert_error (error, STAGEHAND_ERROR, STAGEHAND_ERROR_CORRUPT);
}

/* Three empty /etc trees (an image without /etc files, as the VM tier's
 * small images are): the state is its header line alone, and parses. */
static void
test_state_of_empty_trees_round_trips (Fixture *f, gconstpointer data)
{
  g_autoptr (EtcTree) o = etc_tree_new ();
  g_autoptr (EtcTree) r = etc_tree_new ();
  g_autoptr (EtcTree) n = etc_tree_new ();
  EtcMergeState state = { .pristine = o, .running = r, .new_tree = n };
  gsize len;
  g_autofree char *data_ = etc_merge_state_to_data (&state, &len);
  g_autoptr (GError) error = NULL;
  g_autoptr (EtcMergeState) parsed = NULL;
  g_assert_true (etc_merge_state_parse (data_, len, "state", &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (etc_tree_count (parsed->running), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                                              \
  g_test_add ("/etc-merge/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("untouched-paths-take-the-new-image", test_untouched_paths_take_the_new_image);
  ADD ("modified-file-is-carried", test_modified_file_is_carried);
  ADD ("added-file-is-carried", test_added_file_is_carried);
  ADD ("removed-file-stays-removed", test_removed_file_stays_removed);
  ADD ("mode-only-change-is-carried", test_mode_only_change_is_carried);
  ADD ("owner-only-change-is-carried", test_owner_only_change_is_carried);
  ADD ("xattr-only-change-is-carried", test_xattr_only_change_is_carried);
  ADD ("retargeted-symlink-is-carried", test_retargeted_symlink_is_carried);
  ADD ("file-that-became-a-directory-is-carried", test_file_that_became_a_directory_is_carried);
  ADD ("directory-that-became-a-file-is-carried", test_directory_that_became_a_file_is_carried);
  ADD ("both-sides-changed-keeps-local-and-new-beside",
       test_both_sides_changed_keeps_local_and_new_beside);
  ADD ("file-versus-directory-conflict-never-fails",
       test_file_versus_directory_conflict_never_fails);
  ADD ("removed-by-new-image-but-changed-locally-is-kept",
       test_removed_by_new_image_but_changed_locally_is_kept);
  ADD ("removed-locally-but-changed-by-new-image", test_removed_locally_but_changed_by_new_image);
  ADD ("socket-and-fifo-are-not-carried", test_socket_is_not_carried);
  ADD ("names-that-are-not-utf8", test_names_that_are_not_utf8);
  ADD ("without-pristine-local-differences-win", test_without_pristine_local_differences_win);
  ADD ("changes-after-stage-are-topped-up", test_changes_after_stage_are_topped_up);
  ADD ("directory-added-then-removed-after-stage", test_directory_added_then_removed_after_stage);
  ADD ("top-up-reads-only-what-changed", test_top_up_reads_only_what_changed);
  ADD ("state-round-trips", test_state_round_trips);
  ADD ("state-of-empty-trees-round-trips", test_state_of_empty_trees_round_trips);
  return g_test_run ();
}

/* Importing an OS image into a new deployment tree.
 *
 * Two sources feed one writer: a directory walk (import-dir.c) and the
 * entries of a tar stream read by libarchive (import-tar.c). The writer
 * (tree-writer.c, with tree-writer-file.c for regular files and
 * tree-writer-workers.c for the threads that write them) is the only code
 * that touches the destination. This file opens the image and the
 * destination, picks the source, and removes a failed import's tree.
 */
#include "config.h"

#include "image-import.h"
#include "import-private.h"
#include "errors.h"
#include "fsutil.h"
#include "manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean
import_into (int image_fd, const struct stat *image_st, const char *image_path, int dest_parent_dfd,
             const char *dest_name, const ImportOptions *options, Manifest **ret_manifest,
             GError **error)
{
  autofd root_fd
      = openat (dest_parent_dfd, dest_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd < 0)
    return throw_errno (error, "opening %s", dest_name);

  TreeWriter w;
  tree_writer_init (&w, root_fd, options);
  if (ret_manifest != NULL || w.ref_manifest != NULL)
    w.manifest = manifest_new ();
  tree_writer_start_writeback (&w);
  gboolean ok;
  if (S_ISDIR (image_st->st_mode))
    ok = import_directory (&w, image_fd, error);
  else
    ok = import_tar (&w, image_fd, image_path, error);
  /* Every file written (or the workers gone) before the directories get
   * their final modes, and before a failed import's tree is removed. */
  ok = tree_writer_stop_workers (&w, !ok, error) && ok;
  tree_writer_stop_writeback (&w);
  ok = ok && tree_writer_finish (&w, error);
  if (ok)
    {
      w.progress.done = TRUE;
      tree_writer_report (&w);
      if (ret_manifest != NULL)
        *ret_manifest = g_steal_pointer (&w.manifest);
    }
  tree_writer_clear (&w);
  return ok;
}

static gboolean
image_type_is_valid (const struct stat *st)
{
  return S_ISDIR (st->st_mode) || S_ISREG (st->st_mode) || S_ISFIFO (st->st_mode);
}

gboolean
image_import (const char *image_path, int dest_parent_dfd, const char *dest_name,
              const ImportOptions *options, GError **error)
{
  return image_import_with_manifest (image_path, dest_parent_dfd, dest_name, options, NULL, error);
}

gboolean
image_import_with_manifest (const char *image_path, int dest_parent_dfd, const char *dest_name,
                            const ImportOptions *options, Manifest **ret_manifest, GError **error)
{
  static const ImportOptions default_options = IMPORT_OPTIONS_INIT;
  if (options == NULL)
    options = &default_options;

  /* The type is checked before the open: opening a device can do things of
   * its own (a tape rewinds, a serial line hangs up). And again on the fd,
   * in case the path changed in between. */
  struct stat image_st;
  if (stat (image_path, &image_st) < 0)
    return throw_errno (error, "opening image %s", image_path);
  if (!image_type_is_valid (&image_st))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "opening image %s: not a directory, a regular file or a FIFO", image_path);
  /* A FIFO blocks here until a writer opens it: that is what streaming an
   * image means. */
  autofd image_fd = open (image_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (image_fd < 0)
    return throw_errno (error, "opening image %s", image_path);
  struct stat opened_st;
  if (fstat (image_fd, &opened_st) < 0)
    return throw_errno (error, "opening image %s", image_path);
  if (opened_st.st_dev != image_st.st_dev || opened_st.st_ino != image_st.st_ino)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "opening image %s: it was replaced while being opened", image_path);

  /* mkdirat() is the existence check: it fails if anything is there. */
  if (mkdirat (dest_parent_dfd, dest_name, 0700) < 0)
    return throw_errno (error, "creating %s", dest_name);

  g_autoptr (GError) local_error = NULL;
  if (import_into (image_fd, &image_st, image_path, dest_parent_dfd, dest_name, options,
                   ret_manifest, &local_error))
    return TRUE;

  /* Nothing may be left behind: a half-written tree is not a deployment. */
  g_autoptr (GError) cleanup_error = NULL;
  if (!fs_rm_rf_at (dest_parent_dfd, dest_name, &cleanup_error))
    g_prefix_error (&local_error, "(removing the partial tree %s failed too: %s) ", dest_name,
                    cleanup_error->message);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

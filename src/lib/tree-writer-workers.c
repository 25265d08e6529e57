/* The threads that write the regular files of a directory image while the
 * walk goes on (see tree_writer_start_workers()), and the one that starts
 * the writeback of what they wrote (tree_writer_start_writeback()).
 */
#include "config.h"

#include "import-private.h"
#include "fsutil.h"

#include <fcntl.h>
#include <unistd.h>

/* A job for @e, taking over @xattrs (leaving an empty list behind): the
 * entry's xattrs point into the job's own list. */
static FileJob *
file_job_alloc (const TreeEntry *e, XattrList *xattrs)
{
  FileJob *job = g_new0 (FileJob, 1);
  job->e = *e;
  job->xattrs = *xattrs;
  xattr_list_init (xattrs);
  job->e.xattrs = (const XattrRef *)job->xattrs.refs->data;
  job->e.n_xattrs = job->xattrs.refs->len;
  job->copy.fd = -1;
  job->parent_fd = -1;
  return job;
}

/* Takes over @xattrs and *@fd (leaving an empty list and -1 behind). */
FileJob *
file_job_new (const TreeEntry *e, XattrList *xattrs, const FileCopy *copy, int *fd)
{
  FileJob *job = file_job_alloc (e, xattrs);
  job->copy = *copy;
  job->copy.fd = fd_steal (fd);
  job->e.content_data = &job->copy;
  return job;
}

FileJob *
file_job_new_held (const TreeEntry *e, XattrList *xattrs, const ContentOps *ops, gpointer held,
                   GDestroyNotify held_free, gsize held_bytes)
{
  FileJob *job = file_job_alloc (e, xattrs);
  job->e.content = ops;
  job->e.content_data = held;
  job->held_free = held_free;
  job->held_bytes = held_bytes;
  return job;
}

void
file_job_free (FileJob *job)
{
  if (job == NULL)
    return;
  if (job->held_free != NULL)
    job->held_free (job->e.content_data);
  if (job->copy.fd >= 0)
    (void)close (job->copy.fd); /* read-only fd: nothing to report */
  if (job->parent_fd >= 0)
    (void)close (job->parent_fd); /* O_PATH fd: nothing to report */
  xattr_list_clear (&job->xattrs);
  g_free (job->name);
  g_free (job->key);
  g_free (job->path);
  g_free (job);
}

gboolean
import_on_one_thread (void)
{
  return g_strcmp0 (g_getenv ("STAGEHAND_DEBUG_ONE_THREAD"), "1") == 0;
}

/* What a worker pops to stop. */
static FileJob stop_job;

static gpointer
file_worker (gpointer data)
{
  TreeWriter *w = data;
  FileWriter fw;
  file_writer_init (&fw);
  for (;;)
    {
      FileJob *job = g_async_queue_pop (w->jobs);
      if (job == &stop_job)
        break;
      g_autoptr (GError) local_error = NULL;
      /* After a failure the import is abandoned: drain the queue quickly. */
      gboolean ok = g_atomic_int_get (&w->failed);
      if (!ok)
        {
          job->copy.fw = &fw;
          ok = tree_writer_write_regular_file (w, &fw, job->parent_fd, job->name, job->key,
                                               job->path, &job->e, &local_error);
        }
      gsize held_bytes = job->held_bytes;
      file_job_free (job);
      g_mutex_lock (&w->lock);
      w->pending_held_bytes -= held_bytes;
      if (!ok && w->job_error == NULL)
        {
          w->job_error = g_steal_pointer (&local_error);
          g_atomic_int_set (&w->failed, TRUE);
        }
      w->pending--;
      g_cond_broadcast (&w->job_done);
      g_mutex_unlock (&w->lock);
    }
  file_writer_clear (&fw);
  return NULL;
}

/* Why threads: writing a regular file is a handful of system calls (open,
 * read, link or create + write + chown + chmod + utimens, close) that do not
 * depend on the walk, and the walk itself is as many again (readdir, open,
 * fstat, listxattr, mkdir, ...). Two cores run both at once; see
 * docs/design.md for the numbers. */
void
tree_writer_start_workers (TreeWriter *w)
{
  if (import_on_one_thread ())
    return;
  w->jobs = g_async_queue_new ();
  for (guint i = 0; i < IMPORT_WORKERS; i++)
    {
      g_autofree char *name = g_strdup_printf ("import-%u", i);
      w->workers[w->n_workers++] = g_thread_new (name, file_worker, w);
    }
}

/* Waits until every submitted file is written; the first worker's error,
 * if any. */
gboolean
tree_writer_drain (TreeWriter *w, GError **error)
{
  if (w->n_workers == 0)
    return TRUE;
  g_mutex_lock (&w->lock);
  while (w->pending > 0)
    g_cond_wait (&w->job_done, &w->lock);
  GError *job_error = g_steal_pointer (&w->job_error);
  g_mutex_unlock (&w->lock);
  if (job_error != NULL)
    {
      g_propagate_error (error, job_error);
      return FALSE;
    }
  return TRUE;
}

/* Drains (reporting a worker's error through @error) and ends the workers.
 * With @abandon (the import failed), queued files are skipped. */
gboolean
tree_writer_stop_workers (TreeWriter *w, gboolean abandon, GError **error)
{
  if (w->n_workers == 0)
    return TRUE;
  if (abandon)
    g_atomic_int_set (&w->failed, TRUE);
  g_autoptr (GError) local_error = NULL;
  gboolean ok = tree_writer_drain (w, &local_error);
  for (guint i = 0; i < w->n_workers; i++)
    g_async_queue_push (w->jobs, &stop_job);
  for (guint i = 0; i < w->n_workers; i++)
    g_thread_join (w->workers[i]);
  w->n_workers = 0;
  if (!ok && !abandon)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return ok;
}

/* Hands @job (consumed) to the workers, to be written as @name below
 * @parent_fd. Waits while IMPORT_MAX_PENDING jobs are queued, or while
 * its held content would take the queue's above IMPORT_MAX_HELD_BYTES. */
gboolean
tree_writer_submit (TreeWriter *w, FileJob *job, int parent_fd, const char *name, const char *key,
                    const char *path, GError **error)
{
  g_autoptr (FileJob) owned = job;
  /* The walk moves on and may close @parent_fd; the worker needs its own. */
  owned->parent_fd = fcntl (parent_fd, F_DUPFD_CLOEXEC, 3);
  if (owned->parent_fd < 0)
    return import_throw_entry_errno (error, path, "duplicating a directory fd");
  owned->name = g_strdup (name);
  owned->key = g_strdup (key);
  owned->path = g_strdup (path);

  g_mutex_lock (&w->lock);
  while ((w->pending >= IMPORT_MAX_PENDING
          || (w->pending > 0 && w->pending_held_bytes + owned->held_bytes > IMPORT_MAX_HELD_BYTES))
         && w->job_error == NULL)
    g_cond_wait (&w->job_done, &w->lock);
  gboolean failed = w->job_error != NULL;
  if (!failed)
    {
      w->pending++;
      w->pending_held_bytes += owned->held_bytes;
    }
  g_mutex_unlock (&w->lock);
  if (failed)
    return tree_writer_drain (w, error);
  g_async_queue_push (w->jobs, g_steal_pointer (&owned));
  return TRUE;
}

/* Why a flusher: a stage is durable at its one syncfs, and on a first
 * deployment that syncfs used to find the whole tree still in the page
 * cache, a third of the stage spent waiting for the disk after the import
 * was done. sync_file_range(SYNC_FILE_RANGE_WRITE) starts a file's
 * writeback without waiting for it, so the disk works while the import goes
 * on. Called by the writing threads themselves, it made the import slower
 * than the syncfs it saved (block allocation and submission run in the
 * caller); one thread of its own keeps that off the writers. A hint only:
 * whatever fails here, the syncfs reports. README, "Performance", has the
 * numbers. */
static gpointer
flusher (gpointer data)
{
  TreeWriter *w = data;
  for (;;)
    {
      int fd = GPOINTER_TO_INT (g_async_queue_pop (w->flush_fds)) - 1;
      if (fd < 0)
        break;
      if (!g_atomic_int_get (&w->failed))
        (void)sync_file_range (fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: see above */
      (void)close (fd); /* a dup; the syncfs reports write errors */
    }
  return NULL;
}

void
tree_writer_start_writeback (TreeWriter *w)
{
  if (import_on_one_thread ())
    return;
  w->flush_fds = g_async_queue_new ();
  w->flusher = g_thread_new ("import-flush", flusher, w);
}

/* Hands a dup of @fd, just written with @bytes of data, to the flusher;
 * does nothing for a small file or when the flusher lags behind. */
void
tree_writer_queue_writeback (TreeWriter *w, int fd, guint64 bytes)
{
  if (w->flusher == NULL || bytes < WRITEBACK_MIN_BYTES
      || g_async_queue_length (w->flush_fds) >= WRITEBACK_MAX_QUEUED)
    return;
  int dup_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd >= 0) /* EMFILE and the like: the syncfs writes it anyway */
    g_async_queue_push (w->flush_fds, GINT_TO_POINTER (dup_fd + 1));
}

/* Ends the flusher once it has seen every queued fd. */
void
tree_writer_stop_writeback (TreeWriter *w)
{
  if (w->flusher == NULL)
    return;
  g_async_queue_push (w->flush_fds, GINT_TO_POINTER (-1));
  g_thread_join (w->flusher);
  w->flusher = NULL;
  g_clear_pointer (&w->flush_fds, g_async_queue_unref);
}

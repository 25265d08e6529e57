/* What lock.c and lock-holder.c share: how the lock file is identified in
 * /proc, what a holder records about itself, and how a holder is named.
 * Internal to the lock; everything else uses lock.h. */
#pragma once

#include "lock.h"

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Bounds on what we read from /proc files others may control. */
#define PROC_FILE_MAX_BYTES 16384

/* How the kernel names the lock file in fdinfo lock lines. The device there
 * is the superblock's s_dev, which differs from fstat's st_dev on btrfs
 * subvolumes; the mount id of the fd (also in fdinfo) identifies the file
 * system in that case. */
typedef struct
{
  dev_t dev;
  ino_t ino;
  int mnt_id; /* -1 if unknown */
} LockFileId;

/* What a holder says about itself. Gathered before the lock is taken: the
 * /proc reads are slow on a loaded machine, and every moment between taking
 * the lock and writing the metadata is a moment in which waiters can only
 * name us from /proc, without our operation. */
typedef struct
{
  pid_t pid;
  guint64 start_ticks; /* 0 if unknown */
  char *command;
  char *boot_id; /* NULL if unknown */
} MetadataSelf;

void lock_metadata_self_init (MetadataSelf *self);
void lock_metadata_self_clear (MetadataSelf *self);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MetadataSelf, lock_metadata_self_clear)

/* The lock file's contents for this holder doing @operation. */
char *lock_metadata_format (const MetadataSelf *self, const char *operation);

/* Reads at most @max bytes of a /proc file; NULL if it cannot be read. */
char *lock_proc_read (const char *path, gsize max, gsize *ret_len);

/* The "mnt_id:" field of an fdinfo file, or -1. */
int lock_fdinfo_mnt_id (const char *fdinfo);

/* Names whoever holds the lock on @fd and lists every process holding it
 * (*ret_pids); a holder with pid 0 when nobody can be identified. */
LockHolder *lock_identify_holder (int fd, const LockFileId *id, pid_t kernel_pid,
                                  GArray **ret_pids);

/* Fails with STAGEHAND_ERROR_LOCK_DEADLOCK if this process or one of its
 * ancestors is among @pids. */
gboolean lock_check_deadlock (const LockHolder *named, GArray *pids, GError **error);

G_END_DECLS

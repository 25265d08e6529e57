/* Questions about mounts, answered from mountinfo with libmount, never by
 * touching the path (a stat or open of an autofs mount point triggers it).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *target;           /* canonical mount point path that was asked about */
  gboolean is_mountpoint; /* something is mounted exactly at @target */
  gboolean is_autofs;     /* the first (bottom) entry at @target is autofs */
  gboolean is_mounted;    /* a real filesystem is mounted at @target (on top of autofs, if any) */
  char *fstype;           /* of the top entry at @target, NULL if nothing is mounted */
  char *source;           /* of the top entry at @target, NULL if nothing is mounted */
} MountState;

void mount_state_free (MountState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MountState, mount_state_free)

/* Describes what is mounted at @path. @mountinfo_path is NULL for
 * /proc/self/mountinfo, or a fixture file (unit tests). @path is made
 * canonical without touching its last component. Not a mount point at all
 * is not an error: is_mountpoint = FALSE. */
gboolean mount_query (const char *mountinfo_path, const char *path, MountState **ret_state,
                      GError **error);

/* One line for logs and status: "autofs, mounted (ext4 /dev/loop0)",
 * "autofs, not mounted", "ext4 /dev/vda2", "not a mount point". */
char *mount_state_describe (const MountState *state);

G_END_DECLS

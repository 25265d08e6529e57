/* Holding the boot directory and the sysroot open until shutdown.
 *
 * ostree#2543: when /boot is an automount, it can expire before shutdown,
 * and a finalize unit with RequiresMountsFor=/boot is then stopped (and
 * finalizes) at once; once shutdown has begun, systemd refuses to mount an
 * automount it is stopping (systemd#22528). An open directory fd keeps the
 * mount busy so it never expires; autofs counts only fds in the mount
 * namespace of the mount, so the holder runs in the root namespace. The
 * same process then finalizes through the held fds at SIGTERM, so nothing
 * can expire between the hold and the work.
 */
#pragma once

#include <glib.h>

#include "sysroot.h"

G_BEGIN_DECLS

/* Describes the mounts at the sysroot and boot directory (for logs and status). */
char *hold_describe_mounts (Sysroot *sysroot);

/* With SIGTERM, SIGINT and SIGHUP blocked by the caller (on the first line
 * of main, before any thread exists): tells the service manager READY=1
 * once *sysroot's fds are open, then waits in sigwait(). SIGHUP re-opens
 * the held directories (new fds first, then the old ones are closed, so the
 * mounts are never unheld). Returns on SIGTERM or SIGINT, in *ret_signal. */
gboolean hold_until_shutdown (Sysroot **sysroot, int *ret_signal, GError **error);

G_END_DECLS

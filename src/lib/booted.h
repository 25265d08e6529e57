/* /run/stagehand/booted: the marker stagehand-root-setup writes in the
 * initramfs when it makes a deployment the root (src/root-setup/). Booted
 * that way, the physical root is at /sysroot, and that, not /, is the
 * sysroot every command works on by default; the boot directory is the
 * running system's /boot. docs/design.md, "Booting a deployment".
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BOOTED_MARKER_RUN_PATH "run/stagehand/booted" /* below the running root */

typedef struct
{
  char *os;
  char *id;
  char *sysroot;      /* the physical root as the running system sees it: "/sysroot" */
  guint64 setup_usec; /* how long the root setup took, 0 if not recorded */
} BootedMarker;

void booted_marker_free (BootedMarker *marker);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BootedMarker, booted_marker_free)

/* Parses a marker; @what names it in errors (STAGEHAND_ERROR_CORRUPT). */
gboolean booted_marker_parse (const char *data, gsize len, const char *what,
                              BootedMarker **ret_marker, GError **error);

/* The running system's root: "/". STAGEHAND_DEBUG_ROOT replaces it, for
 * tests only: they build <root>/run/stagehand/booted, <root>/sysroot and
 * <root>/boot the way a booted deployment has them. */
const char *booted_host_root (void);

/* Reads <host root>/run/stagehand/booted; *ret_marker is NULL without one. */
gboolean booted_marker_load (BootedMarker **ret_marker, GError **error);

G_END_DECLS

/* <sysroot>/stagehand/deploy/<os>/<id>.origin: where a deployment came
 * from and how it boots. Written once, with the deployment, and never
 * changed (deployments are immutable). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *os;
  char *id;
  char *image;          /* the image path it was staged from */
  char *title;          /* os-release PRETTY_NAME */
  char *version;        /* os-release VERSION_ID (or VERSION), NULL if none */
  char *kernel_version; /* kver */
  char *kernel_path;    /* relative to the deployment tree */
  char *initramfs_path; /* relative to the deployment tree, NULL if none */
  char *bootcsum;       /* 64 hex digits, see kernel_checksum(); read, never recomputed */
  char **kargs;         /* without stagehand= */
  gint64 created;       /* realtime seconds */
} Origin;

void origin_free (Origin *origin);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Origin, origin_free)

char *origin_to_data (const Origin *origin, gsize *ret_len);

/* Parses and validates; @what names the file in errors (STAGEHAND_ERROR_CORRUPT). */
gboolean origin_parse (const char *data, gsize len, const char *what, Origin **ret_origin,
                       GError **error);

/* "<os>-<bootcsum>": the directory below <boot>/stagehand holding the kernel. */
char *origin_boot_dir_name (const Origin *origin);

/* TRUE if @s is 64 lower-case hex digits. */
gboolean bootcsum_is_valid (const char *s);

/* TRUE if @id is a valid deployment id (digits only, no leading zero). */
gboolean deployment_id_is_valid (const char *id);

G_END_DECLS

/* The stagehand= kernel argument: finding it on a command line and checking
 * that it names a deployment, /stagehand/deploy/<os>/<id>.
 *
 * Pure C with libc only: the initramfs root setup (src/root-setup/) builds
 * this file too, and must not link GLib. The core uses the same rules, so
 * the deployment the root setup mounts is the one `status` calls booted.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DEPLOYMENT_KARG_KEY "stagehand"
#define DEPLOYMENT_KARG_PREFIX "/stagehand/deploy/"

/* os names: lower-case letters, digits, '.', '_', '-', not starting with
 * '.' or '-', at most 64 bytes. */
bool deployment_os_name_is_valid (const char *name);

/* Deployment ids: 1 to 9 decimal digits, no leading zero. */
bool deployment_id_string_is_valid (const char *id);

/* The value of the last stagehand= argument on @cmdline, with the quotes
 * the kernel strips removed; malloc'd, NULL when there is none (or out of
 * memory, which an initramfs cannot act on differently). */
char *deployment_karg_find (const char *cmdline);

/* Checks that @value is exactly /stagehand/deploy/<os>/<id>. Returns NULL
 * when it is, else a static reason ("contains \"..\"", "not an absolute
 * path", ...). Nothing is looked up: a `..` or a path outside deploy/ is
 * refused before anything is touched. On success, *ret_os and *ret_id
 * (when not NULL) point into @value and are *ret_os_len / end of string. */
const char *deployment_karg_check (const char *value, const char **ret_os, size_t *ret_os_len,
                                   const char **ret_id);

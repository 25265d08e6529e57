/* <sysroot>/stagehand/stagehand.conf: defaults that command-line flags override.
 *
 *   [stagehand]
 *   retain=2                  # deployments kept in the boot menu
 *   lock-timeout=60           # seconds a command waits for the sysroot lock
 *   finalize-lock-timeout=20  # the same at shutdown (must fit the unit's stop timeout)
 *   kargs=quiet splash        # appended to the inherited kernel arguments
 *   boot-counting-tries=3     # tries of a new default before the boot loader
 *                             # falls back (0: off; unset: 3 with systemd-boot)
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CONFIG_FILE "stagehand.conf"

typedef struct
{
  guint retain;
  guint lock_timeout;
  guint finalize_lock_timeout;
  char **kargs;
  /* boot-counting-tries=; CONFIG_TRIES_UNSET: 3 where systemd-boot is the
   * boot loader, else off (boot-counting.h decides). */
  int boot_counting_tries;
} Config;

#define CONFIG_TRIES_UNSET (-1)
#define CONFIG_TRIES_MAX 100

void config_free (Config *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Config, config_free)

Config *config_new_default (void);

/* Parses the keyfile text; unknown keys are ignored, bad values are errors
 * naming the key. */
gboolean config_parse (const char *data, gsize len, const char *what, Config **ret_config,
                       GError **error);

G_END_DECLS

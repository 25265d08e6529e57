#include "config.h"

#include "conf.h"
#include "errors.h"
#include "karg.h"

#define GROUP "stagehand"

void
config_free (Config *config)
{
  if (config == NULL)
    return;
  g_strfreev (config->kargs);
  g_free (config);
}

Config *
config_new_default (void)
{
  Config *c = g_new0 (Config, 1);
  c->retain = 2;
  c->lock_timeout = 60;
  /* finalize runs inside the unit's TimeoutStopSec (90 s by default); a
   * lock wait of 20 s leaves room for the work itself. */
  c->finalize_lock_timeout = 20;
  c->kargs = g_new0 (char *, 1);
  c->boot_counting_tries = CONFIG_TRIES_UNSET;
  return c;
}

static gboolean
get_uint (GKeyFile *kf, const char *key, const char *what, guint min, guint max, guint *value,
          GError **error)
{
  if (!g_key_file_has_key (kf, GROUP, key, NULL))
    return TRUE;
  g_autofree char *s = g_key_file_get_string (kf, GROUP, key, NULL);
  guint64 v;
  if (s == NULL || !g_ascii_string_to_unsigned (s, 10, min, max, &v, NULL))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "%s: %s=\"%s\" is not a number between %u and %u", what, key, s ? s : "",
                        min, max);
  *value = v;
  return TRUE;
}

gboolean
config_parse (const char *data, gsize len, const char *what, Config **ret_config, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_INVALID, "%s: %s", what, local_error->message);

  g_autoptr (Config) c = config_new_default ();
  if (!get_uint (kf, "retain", what, 1, 64, &c->retain, error)
      || !get_uint (kf, "lock-timeout", what, 0, 86400, &c->lock_timeout, error)
      || !get_uint (kf, "finalize-lock-timeout", what, 0, 3600, &c->finalize_lock_timeout, error))
    return FALSE;
  if (g_key_file_has_key (kf, GROUP, "boot-counting-tries", NULL))
    {
      guint tries = 0;
      if (!get_uint (kf, "boot-counting-tries", what, 0, CONFIG_TRIES_MAX, &tries, error))
        return FALSE;
      c->boot_counting_tries = (int)tries;
    }
  /* A kargs= that cannot be read (not UTF-8) is an error, never silently
   * no kernel arguments: that would drop a fleet's policy unnoticed. */
  g_autofree char *kargs = NULL;
  if (g_key_file_has_key (kf, GROUP, "kargs", NULL))
    {
      kargs = g_key_file_get_string (kf, GROUP, "kargs", &local_error);
      if (kargs == NULL)
        return throw_error (error, STAGEHAND_ERROR_INVALID, "%s: kargs: %s", what,
                            local_error->message);
    }
  if (kargs)
    {
      g_strfreev (c->kargs);
      c->kargs = kargs_split (kargs);
      for (char **k = c->kargs; *k; k++)
        if (!karg_validate (*k, error))
          return prefix_error (error, "%s: kargs: ", what);
    }
  *ret_config = g_steal_pointer (&c);
  return TRUE;
}

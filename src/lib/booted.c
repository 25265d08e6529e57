#include "config.h"

#include "booted.h"
#include "deployment-karg.h"
#include "errors.h"

#include <errno.h>
#include <string.h>

#define GROUP "booted"

void
booted_marker_free (BootedMarker *marker)
{
  if (marker == NULL)
    return;
  g_free (marker->os);
  g_free (marker->id);
  g_free (marker->sysroot);
  g_free (marker);
}

static gboolean
corrupt (GError **error, const char *what, const char *why)
{
  return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                      "the booted-deployment marker %s is corrupt: %s (it is written by "
                      "stagehand-root-setup at boot)",
                      what, why);
}

gboolean
booted_marker_parse (const char *data, gsize len, const char *what, BootedMarker **ret_marker,
                     GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    return corrupt (error, what, local->message);
  g_autofree char *deployment = g_key_file_get_string (kf, GROUP, "deployment", NULL);
  g_autofree char *sysroot = g_key_file_get_string (kf, GROUP, "sysroot", NULL);
  if (deployment == NULL || sysroot == NULL)
    return corrupt (error, what, "deployment= or sysroot= is missing");
  /* The same rules as stagehand= itself. */
  g_autofree char *as_karg = g_strconcat (DEPLOYMENT_KARG_PREFIX, deployment, NULL);
  const char *os, *id;
  size_t os_len;
  const char *reason = deployment_karg_check (as_karg, &os, &os_len, &id);
  if (reason != NULL)
    {
      g_autofree char *why = g_strdup_printf ("deployment=%s: %s", deployment, reason);
      return corrupt (error, what, why);
    }
  if (sysroot[0] != '/' || strstr (sysroot, "..") != NULL)
    return corrupt (error, what, "sysroot= is not an absolute path without \"..\"");
  g_autoptr (BootedMarker) m = g_new0 (BootedMarker, 1);
  m->os = g_strndup (os, os_len);
  m->id = g_strdup (id);
  m->sysroot = g_steal_pointer (&sysroot);
  g_autofree char *usec = g_key_file_get_string (kf, GROUP, "setup-usec", NULL);
  if (usec != NULL)
    m->setup_usec = g_ascii_strtoull (usec, NULL, 10);
  *ret_marker = g_steal_pointer (&m);
  return TRUE;
}

const char *
booted_host_root (void)
{
  const char *debug = g_getenv ("STAGEHAND_DEBUG_ROOT");
  return debug != NULL && debug[0] == '/' ? debug : "/";
}

gboolean
booted_marker_load (BootedMarker **ret_marker, GError **error)
{
  g_autofree char *path = g_build_filename (booted_host_root (), BOOTED_MARKER_RUN_PATH, NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          *ret_marker = NULL;
          return TRUE;
        }
      return throw_error (error, STAGEHAND_ERROR_FAILED, "reading %s: %s", path, local->message);
    }
  return booted_marker_parse (data, len, path, ret_marker, error);
}

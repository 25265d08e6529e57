#include "config.h"

#include "origin.h"
#include "deployment-karg.h"
#include "errors.h"
#include "karg.h"
#include "osrelease.h"

#include <string.h>

#define GROUP "origin"

void
origin_free (Origin *origin)
{
  if (origin == NULL)
    return;
  g_free (origin->os);
  g_free (origin->id);
  g_free (origin->image);
  g_free (origin->title);
  g_free (origin->version);
  g_free (origin->kernel_version);
  g_free (origin->kernel_path);
  g_free (origin->initramfs_path);
  g_free (origin->bootcsum);
  g_strfreev (origin->kargs);
  g_free (origin);
}

gboolean
bootcsum_is_valid (const char *s)
{
  if (s == NULL || strlen (s) != 64)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isdigit (*p) && !(*p >= 'a' && *p <= 'f'))
      return FALSE;
  return TRUE;
}

gboolean
deployment_id_is_valid (const char *id)
{
  return deployment_id_string_is_valid (id);
}

char *
origin_boot_dir_name (const Origin *origin)
{
  return g_strdup_printf ("%s-%s", origin->os, origin->bootcsum);
}

char *
origin_to_data (const Origin *origin, gsize *ret_len)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, GROUP, "os", origin->os);
  g_key_file_set_string (kf, GROUP, "id", origin->id);
  g_key_file_set_string (kf, GROUP, "image", origin->image);
  g_key_file_set_string (kf, GROUP, "title", origin->title);
  if (origin->version)
    g_key_file_set_string (kf, GROUP, "version", origin->version);
  g_key_file_set_string (kf, GROUP, "kernel-version", origin->kernel_version);
  g_key_file_set_string (kf, GROUP, "kernel", origin->kernel_path);
  if (origin->initramfs_path)
    g_key_file_set_string (kf, GROUP, "initramfs", origin->initramfs_path);
  g_key_file_set_string (kf, GROUP, "bootcsum", origin->bootcsum);
  g_autofree char *kargs = g_strjoinv (" ", origin->kargs);
  g_key_file_set_string (kf, GROUP, "kargs", kargs);
  g_key_file_set_int64 (kf, GROUP, "created", origin->created);
  return g_key_file_to_data (kf, ret_len, NULL);
}

static gboolean
get_required (GKeyFile *kf, const char *key, const char *what, char **ret, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  char *v = g_key_file_get_string (kf, GROUP, key, &local_error);
  if (v == NULL)
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: missing key \"%s\"", what,
                        key);
  *ret = v;
  return TRUE;
}

gboolean
origin_parse (const char *data, gsize len, const char *what, Origin **ret_origin, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local_error))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: %s", what,
                        local_error->message);

  g_autoptr (Origin) o = g_new0 (Origin, 1);
  g_autofree char *kargs = NULL;
  if (!get_required (kf, "os", what, &o->os, error) || !get_required (kf, "id", what, &o->id, error)
      || !get_required (kf, "image", what, &o->image, error)
      || !get_required (kf, "title", what, &o->title, error)
      || !get_required (kf, "kernel-version", what, &o->kernel_version, error)
      || !get_required (kf, "kernel", what, &o->kernel_path, error)
      || !get_required (kf, "bootcsum", what, &o->bootcsum, error)
      || !get_required (kf, "kargs", what, &kargs, error))
    return FALSE;
  o->version = g_key_file_get_string (kf, GROUP, "version", NULL);
  o->initramfs_path = g_key_file_get_string (kf, GROUP, "initramfs", NULL);
  o->created = g_key_file_get_int64 (kf, GROUP, "created", NULL);

  if (!os_name_is_valid (o->os))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: invalid os \"%s\"", what,
                        o->os);
  if (!deployment_id_is_valid (o->id))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: invalid id \"%s\"", what,
                        o->id);
  if (!bootcsum_is_valid (o->bootcsum))
    return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: invalid bootcsum", what);
  /* These values end up on lines of boot entries. */
  const struct
  {
    const char *key;
    const char *value;
  } single_line[] = { { "title", o->title },
                      { "version", o->version },
                      { "kernel-version", o->kernel_version },
                      { "kargs", kargs } };
  for (guint i = 0; i < G_N_ELEMENTS (single_line); i++)
    for (const char *p = single_line[i].value; p && *p; p++)
      if (g_ascii_iscntrl (*p))
        return throw_error (error, STAGEHAND_ERROR_CORRUPT,
                            "%s is corrupt: %s contains control character 0x%02x", what,
                            single_line[i].key, (guchar)*p);
  o->kargs = kargs_split (kargs);
  for (char **k = o->kargs; *k; k++)
    {
      g_autoptr (GError) karg_error = NULL;
      if (!karg_validate (*k, &karg_error))
        return throw_error (error, STAGEHAND_ERROR_CORRUPT, "%s is corrupt: kargs: %s", what,
                            karg_error->message);
    }

  *ret_origin = g_steal_pointer (&o);
  return TRUE;
}

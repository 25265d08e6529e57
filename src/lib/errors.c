#include "config.h"

#include "errors.h"

#include <errno.h>

GQuark
stagehand_error_quark (void)
{
  return g_quark_from_static_string ("stagehand-error-quark");
}

static gboolean
throw_errno_valist (GError **error, int errnum, const char *fmt, va_list ap)
{
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  /* G_FILE_ERROR is GLib's own errno domain: G_IO_ERROR would bring in gio,
   * which costs the --hold process ~100 KiB of dirty memory for nothing. */
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errnum), "%s: %s", what,
               g_strerror (errnum));
  return FALSE;
}

gboolean
throw_errno (GError **error, const char *fmt, ...)
{
  int errsv = errno;
  va_list ap;
  va_start (ap, fmt);
  throw_errno_valist (error, errsv, fmt, ap);
  va_end (ap);
  errno = errsv;
  return FALSE;
}

gboolean
throw_errno_value (GError **error, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  throw_errno_valist (error, ABS (errnum), fmt, ap);
  va_end (ap);
  return FALSE;
}

gboolean
throw_error (GError **error, StagehandError code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, STAGEHAND_ERROR, code, msg);
  return FALSE;
}

gboolean
prefix_error (GError **error, const char *fmt, ...)
{
  if (error == NULL || *error == NULL)
    return FALSE;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *prefix = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_prefix_error (error, "%s", prefix);
  return FALSE;
}

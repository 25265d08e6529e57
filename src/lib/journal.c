#include "config.h"

#include "journal.h"

#include <stdio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

static int stderr_level = LOG_NOTICE;

void
log_set_stderr_level (int max_priority)
{
  stderr_level = max_priority;
}

gboolean
log_journal_available (void)
{
  static int available = -1;
  if (available < 0)
    available = access ("/run/systemd/journal/socket", W_OK) == 0;
  return available;
}

void
log_event (int priority, const LogFields *f, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *message = g_strdup_vprintf (fmt, ap);
  va_end (ap);

  if (!log_journal_available ())
    {
      if (priority <= LOG_ERR || priority > stderr_level)
        return;
      fprintf (stderr, "stagehand: %s%s\n", priority <= LOG_WARNING ? "warning: " : "", message);
      return;
    }

  g_autoptr (GPtrArray) strs = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (strs, g_strdup_printf ("MESSAGE=%s", message));
  g_ptr_array_add (strs, g_strdup_printf ("PRIORITY=%d", priority));
  g_ptr_array_add (strs, g_strdup ("SYSLOG_IDENTIFIER=stagehand"));
  if (f && f->message_id)
    g_ptr_array_add (strs, g_strdup_printf ("MESSAGE_ID=%s", f->message_id));
  if (f && f->os)
    g_ptr_array_add (strs, g_strdup_printf ("STAGEHAND_OS=%s", f->os));
  if (f && f->deployment)
    g_ptr_array_add (strs, g_strdup_printf ("STAGEHAND_DEPLOYMENT=%s", f->deployment));
  if (f && f->step)
    g_ptr_array_add (strs, g_strdup_printf ("STAGEHAND_STEP=%s", f->step));
  if (f && f->duration_usec)
    g_ptr_array_add (
        strs, g_strdup_printf ("STAGEHAND_DURATION_USEC=%" G_GUINT64_FORMAT, f->duration_usec));

  g_autofree struct iovec *iov = g_new0 (struct iovec, strs->len);
  for (guint i = 0; i < strs->len; i++)
    {
      iov[i].iov_base = strs->pdata[i];
      iov[i].iov_len = strlen (strs->pdata[i]);
    }
  /* A journal that went away mid-shutdown must not fail the operation; the
   * verdict file is the durable record. */
  (void)sd_journal_sendv (iov, strs->len);
}

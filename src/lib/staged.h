/* /run/stagehand/staged: the deployment waiting to become the default at
 * shutdown. It lives in /run so a reboot forgets it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define STAGED_RECORD_FILE "staged"

typedef struct
{
  char *os;
  char *id;
  gint64 staged_at; /* realtime seconds */
} StagedRecord;

void staged_record_free (StagedRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StagedRecord, staged_record_free)

char *staged_record_to_data (const StagedRecord *record, gsize *ret_len);
gboolean staged_record_parse (const char *data, gsize len, const char *what,
                              StagedRecord **ret_record, GError **error);

G_END_DECLS

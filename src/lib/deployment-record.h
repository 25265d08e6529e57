/* The shape the staged record (staged.h) and the staged-pending marker
 * (pending.h) share: a keyfile of one group that names a deployment by its
 * os and id, and says when it was staged. Each file keeps its own group,
 * time key (and unit) and wording of errors, given by its
 * DeploymentRecordFormat, so neither their formats nor their messages
 * changed when they came to share this reader. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  const char *group;    /* the keyfile group */
  const char *time_key; /* the key of staged_time */
  const char *noun;     /* errors say "<noun> <what> is corrupt: ..." */
  const char *remedy;   /* appended to every error, "" if none */
} DeploymentRecordFormat;

typedef struct
{
  char *os;
  char *id;
  gint64 staged_time; /* realtime, in the unit of the format's time key */
} DeploymentRecord;

void deployment_record_free (DeploymentRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DeploymentRecord, deployment_record_free)

char *deployment_record_to_data (const DeploymentRecordFormat *format,
                                 const DeploymentRecord *record, gsize *ret_len);

/* Parses and validates os and id; @what names the file in errors
 * (STAGEHAND_ERROR_CORRUPT). */
gboolean deployment_record_parse (const DeploymentRecordFormat *format, const char *data, gsize len,
                                  const char *what, DeploymentRecord **ret_record, GError **error);

/* "<os>/<id>" */
char *deployment_record_name (const DeploymentRecord *record);

G_END_DECLS

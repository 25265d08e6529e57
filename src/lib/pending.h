/* <sysroot>/stagehand/staged-pending: the persistent twin of the staged
 * record. The staged record lives in /run, so a reboot forgets it; when the
 * finalize never ran before the machine went down (power loss, a crash, the
 * hold process killed before it blocked its signals or by the OOM killer),
 * no verdict is written either, and without this marker the update would be
 * lost without a word. `stage` writes it (durably) before it starts the
 * finalize unit; `unstage` and a finalize that recorded its verdict remove
 * it; the boot-time check reports a marker that outlived its staged record
 * and that no verdict accounts for. */
#pragma once

#include <glib.h>

#include "deployment-record.h"
#include "verdict.h"

G_BEGIN_DECLS

#define PENDING_MARKER_FILE "staged-pending"

/* [staged-pending] os, id and staged-usec (realtime µs). */
extern const DeploymentRecordFormat pending_marker_format;

typedef enum
{
  PENDING_NONE,      /* no marker */
  PENDING_STAGED,    /* the staged record is still there: staged in this boot, not news */
  PENDING_FINALIZED, /* a finalize ran (the verdict is of it, or it is booted): a leftover */
  PENDING_LOST,      /* staged in an earlier boot and never finalized */
} PendingState;

/* What a marker (NULL: none) means, given whether the runtime directory
 * still has a staged record, the last verdict (NULL: none) and the booted
 * deployment's "<os>/<id>" (NULL: unknown). */
PendingState pending_marker_assess (const DeploymentRecord *marker, gboolean staged_record_exists,
                                    const Verdict *last_verdict, const char *booted);

/* When @marker's deployment was staged, in local time, for people. */
char *pending_marker_staged_at (const DeploymentRecord *marker);

/* What a lost staging (PENDING_LOST) means, in one sentence without the
 * advice: "deployment <os>/<id> was staged at <time> but never finalized:
 * ...; the previous default was booted". */
char *pending_marker_describe_lost (const DeploymentRecord *marker);

G_END_DECLS

/* /run/stagehand/staged: the deployment waiting to become the default at
 * shutdown. It lives in /run so a reboot forgets it. */
#pragma once

#include <glib.h>

#include "deployment-record.h"

G_BEGIN_DECLS

#define STAGED_RECORD_FILE "staged"

/* [staged] os, id and staged-at (realtime seconds). */
extern const DeploymentRecordFormat staged_record_format;

G_END_DECLS

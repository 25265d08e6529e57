/* <sysroot>/stagehand/finalize-result: the last finalize's verdict, written
 * atomically and fsynced before finalize exits, so the next boot can say
 * what happened even when the journal was already gone at shutdown. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VERDICT_FILE "finalize-result"

#define VERDICT_SUCCESS "success"
#define VERDICT_FAILED "failed"
#define VERDICT_NOT_ATTEMPTED "not-attempted"

typedef struct
{
  char *name;
  guint64 usec;
} VerdictStep;

typedef struct
{
  char *result;     /* VERDICT_* */
  char *deployment; /* "<os>/<id>", NULL if unknown */
  char *step;       /* failing step, NULL on success */
  char *error;      /* error message, NULL on success */
  gint64 started;   /* realtime µs */
  gint64 finished;  /* realtime µs */
  char *boot_id;
  char *switched;    /* key switch=: how the boot configuration was switched, "atomic: <how>"
                      * or "not atomic: <why>; <how>" (success only) */
  gboolean reported; /* the boot-complete unit has reported this failure */
  GPtrArray *steps;  /* VerdictStep*, in order */
  /* The /etc merge ([etc-merge]): how many local changes were carried, and
   * each conflict as "<path>: <what happened>"; absent when nothing was
   * merged (etc_merged FALSE). */
  gboolean etc_merged;
  guint etc_changes;
  GPtrArray *etc_conflicts; /* char* */
  gint64 step_started;      /* monotonic µs when the current step began */
} Verdict;

Verdict *verdict_new (void);
void verdict_free (Verdict *verdict);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Verdict, verdict_free)

void verdict_add_step (Verdict *verdict, const char *name, guint64 usec);

/* Step bookkeeping for an operation in progress: begin names the step (it
 * is the failing step if the operation fails now), end records how long it
 * took. Accept a NULL verdict. */
void verdict_begin_step (Verdict *verdict, const char *name);
void verdict_end_step (Verdict *verdict);

char *verdict_to_data (const Verdict *verdict, gsize *ret_len);
gboolean verdict_parse (const char *data, gsize len, const char *what, Verdict **ret_verdict,
                        GError **error);

G_END_DECLS

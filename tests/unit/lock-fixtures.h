/* Fixtures of the sysroot lock tests (test-lock, test-lock-file): a state
 * directory per test, queries of its lock, and metadata planted as a holder
 * would write it. See lock-fixtures.c. */
#pragma once

#include "lock.h"

#include <glib.h>
#include <sys/types.h>

typedef struct
{
  char *dir; /* the state directory, mode 0700 */
  int dfd;
  char *lock_path;
} Fixture;

void fixture_setup (Fixture *fx, gconstpointer data);
void fixture_teardown (Fixture *fx, gconstpointer data);

/* What sysroot_lock_query() says of the fixture's lock (NULL: not held);
 * the query itself must succeed. */
LockHolder *query_lock (Fixture *fx);
char *boot_id (void);
/* Metadata as a holder writes it, for a holder that is gone or never was. */
void plant_metadata (Fixture *fx, pid_t pid, const char *command, const char *operation);
double seconds_since (gint64 start);
void assert_contains (const char *haystack, const char *needle);

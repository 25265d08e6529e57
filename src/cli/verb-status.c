#include "config.h"

#include "cli.h"
#include "booted.h"
#include "hold.h"
#include "journal.h"
#include "ops.h"
#include "lock.h"
#include "verbs.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

/* Bumped when a key changes meaning or goes away; new keys do not bump it. */
#define STATUS_JSON_VERSION 1

static void
add_string_or_null (JsonBuilder *b, const char *key, const char *value)
{
  json_builder_set_member_name (b, key);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
add_boolean (JsonBuilder *b, const char *key, gboolean value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_boolean_value (b, value);
}

static void
add_int (JsonBuilder *b, const char *key, gint64 value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, value);
}

/* Starts the object member @key; when there is nothing to put in it
 * (!@present), writes null instead and returns FALSE. */
static gboolean
begin_object_or_null (JsonBuilder *b, const char *key, gboolean present)
{
  json_builder_set_member_name (b, key);
  if (!present)
    {
      json_builder_add_null_value (b);
      return FALSE;
    }
  json_builder_begin_object (b);
  return TRUE;
}

/* The staged-pending marker when it says a staging was lost (staged in an
 * earlier boot, never finalized), else NULL. */
static const DeploymentRecord *
lost_staging (Sysroot *s)
{
  g_autofree char *booted = sysroot_booted_name (s);
  return pending_marker_assess (s->pending, s->staged_record != NULL, s->last_verdict, booted)
                 == PENDING_LOST
             ? s->pending
             : NULL;
}

/* "boot_counter": {"tries_left", "tries_done"}, or null without one. */
static void
add_counter (JsonBuilder *b, const BootEntry *e)
{
  if (!begin_object_or_null (b, "boot_counter", e != NULL && e->counter.text != NULL))
    return;
  add_int (b, "tries_left", e->counter.tries_left);
  add_int (b, "tries_done", e->counter.tries_done);
  json_builder_end_object (b);
}

static void
add_deployment_ref (JsonBuilder *b, const char *key, const Deployment *d)
{
  g_autofree char *name = d ? deployment_name (d) : NULL;
  add_string_or_null (b, key, name);
}

static void
add_deployments (JsonBuilder *b, Sysroot *s)
{
  json_builder_set_member_name (b, "deployments");
  json_builder_begin_array (b);
  for (guint i = 0; i < s->deployments->len; i++)
    {
      Deployment *d = s->deployments->pdata[i];
      json_builder_begin_object (b);
      add_string_or_null (b, "id", d->id);
      add_string_or_null (b, "os", d->os);
      add_string_or_null (b, "title", d->origin->title);
      add_string_or_null (b, "version", d->origin->version);
      add_string_or_null (b, "kernel_version", d->origin->kernel_version);
      add_string_or_null (b, "bootcsum", d->origin->bootcsum);
      add_string_or_null (b, "image", d->origin->image);
      json_builder_set_member_name (b, "kargs");
      json_builder_begin_array (b);
      for (char **k = d->origin->kargs; *k; k++)
        json_builder_add_string_value (b, *k);
      json_builder_end_array (b);
      add_boolean (b, "is_default", d->is_default);
      add_boolean (b, "is_booted", d->is_booted);
      add_boolean (b, "is_staged", d->is_staged);
      const BootEntry *e
          = d->entry_index >= 0 ? s->boot_config->entries->pdata[d->entry_index] : NULL;
      add_counter (b, e);
      add_boolean (b, "failed_to_boot", e != NULL && boot_entry_is_exhausted (e));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

static void
add_boot (JsonBuilder *b, Sysroot *s, const char *mounts)
{
  BootConfig *bc = s->boot_config;
  json_builder_set_member_name (b, "boot");
  json_builder_begin_object (b);
  add_string_or_null (b, "directory", s->boot_path);
  add_string_or_null (b, "mode", boot_mode_to_string (bc->mode));
  add_boolean (b, "atomic", bc->atomic);
  add_string_or_null (b, "atomic_reason", bc->atomic_reason);
  json_builder_set_member_name (b, "loader_version");
  if (bc->version >= 0)
    json_builder_add_int_value (b, bc->version);
  else
    json_builder_add_null_value (b);
  add_string_or_null (b, "mounts", mounts);
  json_builder_set_member_name (b, "entries");
  json_builder_begin_array (b);
  for (guint i = 0; i < bc->entries->len; i++)
    {
      BootEntry *e = bc->entries->pdata[i];
      g_autofree char *deployment = boot_entry_get_deployment (e);
      json_builder_begin_object (b);
      add_string_or_null (b, "file", e->filename);
      add_string_or_null (b, "id", e->id);
      add_counter (b, e);
      add_string_or_null (b, "title", e->title);
      add_string_or_null (b, "version", e->version);
      add_string_or_null (b, "sort_key", e->sort_key);
      add_string_or_null (b, "linux", e->linux_path);
      add_string_or_null (b, "options", e->options);
      add_string_or_null (b, "deployment", deployment);
      add_boolean (b, "stagehand", boot_entry_is_ours (e));
      add_boolean (b, "is_default", i == 0);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "warnings");
  json_builder_begin_array (b);
  for (guint i = 0; i < bc->warnings->len; i++)
    json_builder_add_string_value (b, bc->warnings->pdata[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
}

/* @unknown: why the lock's state cannot be known (NULL: it can). */
static void
add_lock (JsonBuilder *b, const LockHolder *holder, const char *unknown)
{
  json_builder_set_member_name (b, "lock");
  json_builder_begin_object (b);
  add_string_or_null (b, "state", unknown ? "unknown" : holder ? "held" : "free");
  json_builder_set_member_name (b, "held");
  if (unknown)
    json_builder_add_null_value (b);
  else
    json_builder_add_boolean_value (b, holder != NULL);
  add_string_or_null (b, "unknown_reason", unknown);
  if (holder)
    {
      add_int (b, "pid", holder->pid);
      add_string_or_null (b, "command", holder->command);
      add_string_or_null (b, "operation", holder->operation);
      add_int (b, "since_usec", holder->start_time);
    }
  json_builder_end_object (b);
}

static void
add_verdict (JsonBuilder *b, const Verdict *v)
{
  if (!begin_object_or_null (b, "last_finalize", v != NULL))
    return;
  add_string_or_null (b, "result", v->result);
  add_string_or_null (b, "deployment", v->deployment);
  add_string_or_null (b, "step", v->step);
  add_string_or_null (b, "error", v->error);
  add_string_or_null (b, "boot_id", v->boot_id);
  add_string_or_null (b, "switch", v->switched);
  add_boolean (b, "reported", v->reported);
  add_int (b, "started_usec", v->started);
  add_int (b, "finished_usec", v->finished);
  if (v->etc_merged)
    {
      add_int (b, "etc_changes", v->etc_changes);
      json_builder_set_member_name (b, "etc_conflicts");
      json_builder_begin_array (b);
      for (guint i = 0; i < v->etc_conflicts->len; i++)
        json_builder_add_string_value (b, v->etc_conflicts->pdata[i]);
      json_builder_end_array (b);
    }
  json_builder_set_member_name (b, "durations_usec");
  json_builder_begin_object (b);
  for (guint i = 0; i < v->steps->len; i++)
    {
      VerdictStep *step = v->steps->pdata[i];
      add_int (b, step->name, step->usec);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);
}

/* The /etc changes the staged deployment's finalize will carry: NULL when
 * nothing is staged or nothing is booted from this sysroot; a view only,
 * so a failure to read /etc is shown, never fatal. */
static EtcMergePlan *
etc_preview (Sysroot *s, char **ret_error)
{
  *ret_error = NULL;
  if (s->staged == NULL || s->booted == NULL)
    return NULL;
  g_autoptr (GError) error = NULL;
  EtcMergePlan *plan = NULL;
  if (!sysroot_config_diff (s, &plan, &error))
    *ret_error = g_strdup (error->message);
  return plan;
}

static void
add_etc (JsonBuilder *b, const EtcMergePlan *plan, const char *error)
{
  if (!begin_object_or_null (b, "etc_to_carry", plan != NULL || error != NULL))
    return;
  if (plan)
    {
      add_int (b, "changes", plan->n_changes);
      add_int (b, "conflicts", plan->n_conflicts);
    }
  add_string_or_null (b, "error", error);
  json_builder_end_object (b);
}

static void
add_boot_counting (JsonBuilder *b, Sysroot *s)
{
  g_autofree char *reason = NULL;
  guint tries = boot_counting_tries (s, &reason);
  json_builder_set_member_name (b, "boot_counting");
  json_builder_begin_object (b);
  add_int (b, "tries", tries);
  add_string_or_null (b, "reason", reason);
  json_builder_end_object (b);
}

static void
add_failed_boot (JsonBuilder *b, const FailedBoot *f)
{
  if (!begin_object_or_null (b, "failed_boot", f != NULL))
    return;
  add_string_or_null (b, "deployment", f->deployment);
  add_string_or_null (b, "entry", f->entry);
  add_int (b, "tries", f->tries);
  add_string_or_null (b, "running", f->running);
  add_boolean (b, "reported", f->reported);
  json_builder_end_object (b);
}

static void
add_never_finalized (JsonBuilder *b, const DeploymentRecord *m)
{
  if (!begin_object_or_null (b, "never_finalized", m != NULL))
    return;
  g_autofree char *name = deployment_record_name (m);
  add_string_or_null (b, "deployment", name);
  add_int (b, "staged_usec", m->staged_time);
  json_builder_end_object (b);
}

static void
print_json (Sysroot *s, const LockHolder *holder, const char *lock_unknown, const char *mounts,
            const FailedBoot *failed)
{
  g_autofree char *etc_error = NULL;
  g_autoptr (EtcMergePlan) etc = etc_preview (s, &etc_error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  add_int (b, "version", STATUS_JSON_VERSION);
  add_string_or_null (b, "sysroot", s->path);
  add_deployment_ref (b, "booted", s->booted);
  add_deployment_ref (b, "staged", s->staged);
  add_deployment_ref (b, "default", s->default_deployment);
  add_deployments (b, s);
  add_boot (b, s, mounts);
  add_lock (b, holder, lock_unknown);
  add_etc (b, etc, etc_error);
  add_verdict (b, s->last_verdict);
  add_never_finalized (b, lost_staging (s));
  add_boot_counting (b, s);
  add_failed_boot (b, failed);
  json_builder_end_object (b);

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  g_autofree char *line = g_strconcat (text, "\n", NULL);
  cli_print_json (line);
}

static void
print_text (Sysroot *s, const LockHolder *holder, const char *lock_unknown, const char *mounts,
            const FailedBoot *failed)
{
  if (s->deployments->len == 0)
    printf ("No deployments.\n");
  for (guint i = 0; i < s->deployments->len; i++)
    {
      Deployment *d = s->deployments->pdata[i];
      g_autoptr (GString) marks = g_string_new (NULL);
      if (d->is_staged)
        g_string_append (marks, " (staged)");
      if (d->is_default)
        g_string_append (marks, " (default)");
      if (d->is_booted)
        g_string_append (marks, " (booted)");
      const BootEntry *e
          = d->entry_index >= 0 ? s->boot_config->entries->pdata[d->entry_index] : NULL;
      if (e != NULL && boot_entry_is_exhausted (e))
        g_string_append_printf (marks, " (failed to boot %d times)", e->counter.tries_done);
      else if (e != NULL && e->counter.text != NULL)
        g_string_append_printf (marks, " (boot tries left: %d)", e->counter.tries_left);
      printf ("%c %s/%s%s\n", d->is_booted ? '*' : ' ', d->os, d->id, marks->str);
      printf ("    %s, kernel %s\n", d->origin->title, d->origin->kernel_version);
    }
  BootConfig *bc = s->boot_config;
  printf ("\nBoot directory: %s\n", s->boot_path);
  printf ("  mode: %s%s", boot_mode_to_string (bc->mode), bc->atomic ? ", atomic swap" : "");
  if (bc->version >= 0)
    printf (", live loader.%d", bc->version);
  if (bc->atomic_reason != NULL)
    printf ("\n  swap: %s", bc->atomic_reason);
  printf ("\n  mounts: %s\n", mounts);
  g_autofree char *counting_reason = NULL;
  guint tries = boot_counting_tries (s, &counting_reason);
  if (tries > 0)
    printf ("  boot counting: %u tries (%s)\n", tries, counting_reason);
  else
    printf ("  boot counting: off (%s)\n", counting_reason);
  for (guint i = 0; i < bc->warnings->len; i++)
    printf ("  warning: %s\n", (char *)bc->warnings->pdata[i]);

  if (lock_unknown)
    printf ("\nLock: unknown (%s)\n", lock_unknown);
  else if (holder)
    {
      g_autofree char *who = lock_holder_describe (holder);
      printf ("\nLock: held by %s\n", who);
    }
  else
    printf ("\nLock: free\n");

  g_autofree char *etc_error = NULL;
  g_autoptr (EtcMergePlan) etc = etc_preview (s, &etc_error);
  if (etc != NULL)
    printf ("/etc: %u local change%s will be carried into %s/%s, %u conflict%s "
            "(stagehand config-diff lists them)\n",
            etc->n_changes, etc->n_changes == 1 ? "" : "s", s->staged->os, s->staged->id,
            etc->n_conflicts, etc->n_conflicts == 1 ? "" : "s");
  else if (etc_error != NULL)
    printf ("/etc: cannot tell what will be carried: %s\n", etc_error);

  Verdict *v = s->last_verdict;
  if (v == NULL)
    printf ("Last finalize: none recorded\n");
  else if (v->error)
    printf ("Last finalize: %s for %s during %s: %s\n", v->result,
            v->deployment ? v->deployment : "?", v->step ? v->step : "?", v->error);
  else
    printf ("Last finalize: %s for %s\n", v->result, v->deployment ? v->deployment : "?");
  if (v != NULL && v->etc_merged)
    {
      printf ("  /etc: %u local change%s carried, %u conflict%s\n", v->etc_changes,
              v->etc_changes == 1 ? "" : "s", v->etc_conflicts->len,
              v->etc_conflicts->len == 1 ? "" : "s");
      for (guint i = 0; i < v->etc_conflicts->len; i++)
        printf ("    conflict: %s\n", (char *)v->etc_conflicts->pdata[i]);
    }
  if (v != NULL && v->switched != NULL)
    printf ("  switch: %s\n", v->switched);

  if (failed != NULL)
    {
      g_autofree char *what = failed_boot_describe (failed);
      printf ("Failed boot: %s (the boot loader ran out of tries and fell back; %s)\n", what,
              failed->reported ? "reported" : "not reported yet");
    }

  const DeploymentRecord *lost = lost_staging (s);
  if (lost != NULL)
    {
      g_autofree char *name = deployment_record_name (lost);
      g_autofree char *when = pending_marker_staged_at (lost);
      printf ("Never finalized: %s, staged %s in an earlier boot; the machine went down before "
              "its finalize ran, so it was not applied (stage it again)\n",
              name, when);
    }
}

/* Logs and prints a failed finalize of an earlier boot. */
static void
report_failed_verdict (const Verdict *v)
{
  g_autofree char *os
      = v->deployment ? g_strndup (v->deployment, strcspn (v->deployment, "/")) : NULL;
  LogFields f = { .message_id = MESSAGE_ID_PREVIOUS_FINALIZE_FAILED,
                  .os = os,
                  .deployment = v->deployment,
                  .step = v->step };
  g_autofree char *msg = g_strdup_printf (
      "the previous boot's finalize of %s %s during %s: %s; the previous default was booted "
      "instead",
      v->deployment ? v->deployment : "the staged deployment",
      g_strcmp0 (v->result, VERDICT_NOT_ATTEMPTED) == 0 ? "was not attempted" : "failed",
      v->step ? v->step : "an unknown step", v->error ? v->error : "no error recorded");
  log_event (LOG_ERR, &f, "%s", msg);
  fprintf (stderr, "stagehand: %s\n", msg);
}

/* Logs and prints a staging that an earlier boot lost without a verdict. */
static void
report_lost_staging (const DeploymentRecord *m)
{
  g_autofree char *name = deployment_record_name (m);
  g_autofree char *lost = pending_marker_describe_lost (m);
  LogFields f
      = { .message_id = MESSAGE_ID_STAGED_NEVER_FINALIZED, .os = m->os, .deployment = name };
  g_autofree char *msg = g_strdup_printf ("%s. Stage it again.", lost);
  log_event (LOG_ERR, &f, "%s", msg);
  fprintf (stderr, "stagehand: %s\n", msg);
}

/* Logs and prints a default that ran out of boot tries. */
static void
report_failed_boot (const FailedBoot *failed)
{
  g_autofree char *os = g_strndup (failed->deployment, strcspn (failed->deployment, "/"));
  LogFields f
      = { .message_id = MESSAGE_ID_BOOT_FELL_BACK, .os = os, .deployment = failed->deployment };
  g_autofree char *what = failed_boot_describe (failed);
  g_autofree char *msg = g_strdup_printf (
      "%s: the boot loader ran out of tries for its entry %s and fell back to the previous "
      "deployment; the update did not apply and %s stays out of the default. Stage a fixed image",
      what, failed->entry, failed->deployment);
  log_event (LOG_ERR, &f, "%s", msg);
  fprintf (stderr, "stagehand: %s\n", msg);
}

/* Booted into a deployment: the root setup's own duration, from its
 * marker, goes to the journal once per boot (the initramfs has no journal
 * of its own to send it to). */
static void
report_root_setup (void)
{
  g_autoptr (BootedMarker) marker = NULL;
  g_autoptr (GError) error = NULL;
  if (!booted_marker_load (&marker, &error))
    {
      log_event (LOG_WARNING, NULL, "%s", error->message);
      return;
    }
  if (marker == NULL)
    return;
  g_autofree char *name = g_strdup_printf ("%s/%s", marker->os, marker->id);
  LogFields f = { .message_id = MESSAGE_ID_ROOT_SETUP,
                  .os = marker->os,
                  .deployment = name,
                  .step = "root-setup",
                  .duration_usec = marker->setup_usec };
  log_event (
      LOG_INFO, &f,
      "booted deployment %s, physical root at %s; the initramfs root setup took %" G_GUINT64_FORMAT
      " us",
      name, marker->sysroot, marker->setup_usec);
}

/* For stagehand-boot-complete.service: a failed finalize of the previous
 * boot, a staging that no finalize ever took up, or a default that failed
 * to boot until the boot loader fell back, fails the unit, so it shows in
 * `systemctl --failed` and the journal, once; the verdict is then marked
 * reported, the staged-pending marker removed, the failed boot recorded as
 * reported. */
static int
report_failure (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autoptr (Verdict) v = NULL;
  g_autoptr (DeploymentRecord) lost = NULL;
  report_root_setup ();
  /* Runs at every boot: never trigger the /boot automount for it. */
  if (!sysroot_open_without_boot (cli_globals.sysroot, &sysroot, &error))
    return cli_fail (error);
  if (!sysroot_lock (sysroot, "report", sysroot->config->lock_timeout, cli_report_lock_wait,
                     "report", &error))
    {
      cli_explain_lock_timeout (error, sysroot, CLI_LOCK_TIMEOUT_CONF);
      return cli_fail (error);
    }
  if (!sysroot_take_unreported_failure (sysroot, &v, &error))
    return cli_fail (error);
  if (v != NULL)
    report_failed_verdict (v);
  if (!sysroot_take_lost_staging (sysroot, &lost, &error))
    return cli_fail (error);
  if (lost != NULL)
    report_lost_staging (lost);
  g_autoptr (FailedBoot) failed = NULL;
  if (!sysroot_take_failed_boot (sysroot, &failed, &error))
    return cli_fail (error);
  if (failed != NULL)
    report_failed_boot (failed);
  if (v == NULL && lost == NULL && failed == NULL)
    {
      printf ("No unreported finalize failure\n");
      return 0;
    }
  return EXIT_FAILURE;
}

int
verb_status (int argc, char **argv)
{
  gboolean report = FALSE;
  const GOptionEntry entries[] = {
    { "report-failure", 0, 0, G_OPTION_ARG_NONE, &report,
      "Exit 1 once if the previous boot's finalize failed or never ran, or its default "
      "failed to boot (for stagehand-boot-complete.service)",
      NULL },
    { NULL },
  };
  if (!cli_parse_options ("status", NULL,
                          "Show deployments, the boot configuration, the lock and the last "
                          "finalize.",
                          entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("status", "unexpected argument \"%s\"", argv[1]);
  if (report)
    return report_failure ();

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autoptr (LockHolder) holder = NULL;
  g_autofree char *lock_unknown = NULL;
  /* status never takes the lock: it shows who has it, to whoever may read
   * the state (the lock file itself is root's alone). */
  if (!cli_open_sysroot (NULL, -1, CLI_LOCK_TIMEOUT_CONF, TRUE, &sysroot, &error)
      || !sysroot_load_pending (sysroot, &error)
      || !sysroot_lock_query_as_reader (sysroot->state_dfd, &holder, &lock_unknown, &error))
    return cli_fail (error);
  g_autofree char *mounts = hold_describe_mounts (sysroot);
  g_autoptr (FailedBoot) failed = sysroot_assess_boot (sysroot);
  if (cli_globals.json)
    print_json (sysroot, holder, lock_unknown, mounts, failed);
  else
    print_text (sysroot, holder, lock_unknown, mounts, failed);
  return 0;
}

#include "config.h"

#include "cli.h"
#include "ops.h"
#include "verbs.h"

#include <stdio.h>

/* Bumped when a key changes meaning or goes away; new keys do not bump it. */
#define CONFIG_DIFF_JSON_VERSION 1

static void
print_json (Sysroot *s, const EtcMergePlan *plan)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autofree char *staged = s->staged ? deployment_name (s->staged) : NULL;
  g_string_append_printf (out,
                          "{\n  \"version\": %d,\n  \"verb\": \"config-diff\",\n  \"staged\": ",
                          CONFIG_DIFF_JSON_VERSION);
  if (staged)
    cli_json_append_string (out, staged);
  else
    g_string_append (out, "null");
  g_string_append (out, ",\n  \"changes\": [");
  gboolean first = TRUE;
  for (guint i = 0; i < plan->items->len; i++)
    {
      const EtcMergeItem *item = plan->items->pdata[i];
      if (item->change == 0)
        continue;
      g_autofree char *path = etc_merge_display_path (item->path);
      g_string_append (out, first ? "\n    {\"change\": \"" : ",\n    {\"change\": \"");
      g_string_append_c (out, item->change);
      g_string_append (out, "\", \"path\": ");
      cli_json_append_string (out, path);
      g_string_append (out, "}");
      first = FALSE;
    }
  g_string_append (out, first ? "],\n  \"conflicts\": [" : "\n  ],\n  \"conflicts\": [");
  first = TRUE;
  for (guint i = 0; i < plan->items->len; i++)
    {
      const EtcMergeItem *item = plan->items->pdata[i];
      if (!item->conflict)
        continue;
      g_autofree char *path = etc_merge_display_path (item->path);
      g_string_append (out, first ? "\n    {\"path\": " : ",\n    {\"path\": ");
      cli_json_append_string (out, path);
      g_string_append (out, ", \"reason\": ");
      cli_json_append_string (out, item->why);
      g_string_append (out, ", \"new_version\": ");
      if (item->new_beside)
        {
          g_autofree char *beside = g_strconcat (path, ETC_MERGE_NEW_SUFFIX, NULL);
          cli_json_append_string (out, beside);
        }
      else
        g_string_append (out, "null");
      g_string_append (out, "}");
      first = FALSE;
    }
  g_string_append (out, first ? "]\n}\n" : "\n  ]\n}\n");
  cli_print_json (out->str);
}

static void
print_text (Sysroot *s, const EtcMergePlan *plan)
{
  for (guint i = 0; i < plan->items->len; i++)
    {
      const EtcMergeItem *item = plan->items->pdata[i];
      g_autofree char *path = etc_merge_display_path (item->path);
      if (item->change != 0)
        printf ("%c    %s\n", item->change, path);
    }
  if (plan->n_conflicts == 0)
    return;
  g_autofree char *staged = deployment_name (s->staged);
  printf ("\nConflicts with %s (the local version is kept):\n", staged);
  for (guint i = 0; i < plan->items->len; i++)
    {
      const EtcMergeItem *item = plan->items->pdata[i];
      if (!item->conflict)
        continue;
      g_autofree char *path = etc_merge_display_path (item->path);
      printf ("C    %s: %s%s%s%s\n", path, item->why,
              item->new_beside ? "; the new image's version goes to " : "",
              item->new_beside ? path : "", item->new_beside ? ETC_MERGE_NEW_SUFFIX : "");
    }
}

int
verb_config_diff (int argc, char **argv)
{
  if (!cli_parse_options ("config-diff", NULL,
                          "List what a finalize would carry from the running /etc: M modified, "
                          "A added, D removed relative to the booted image's /etc, and the "
                          "conflicts with the staged image.",
                          NULL, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return cli_usage_error ("config-diff", "unexpected argument \"%s\"", argv[1]);

  g_autoptr (GError) error = NULL;
  g_autoptr (Sysroot) sysroot = NULL;
  g_autoptr (EtcMergePlan) plan = NULL;
  /* Only reads: no lock, like status. */
  if (!cli_open_sysroot (NULL, -1, CLI_LOCK_TIMEOUT_CONF, TRUE, &sysroot, &error)
      || !sysroot_config_diff (sysroot, &plan, &error))
    return cli_fail (error);
  if (cli_globals.json)
    print_json (sysroot, plan);
  else
    print_text (sysroot, plan);
  return 0;
}

/* The boot-time assessment of automatic boot counting: did the default the
 * last finalize wrote run out of tries, so the boot loader fell back?
 *
 * Only the entry names and what this boot ran are looked at, as
 * systemd-boot leaves them: it renames the entry before each try
 * (+3 -> +2-1 -> +1-2 -> +0-3), so the last try runs with +0-3 already.
 */
#include "config.h"

#include "boot-counting.h"

#include <string.h>

static BootEntry *
entry (const char *filename, const char *version, const char *deployment)
{
  BootEntry *e = boot_entry_new (filename);
  e->sort_key = g_strdup (BOOT_ENTRY_SORT_KEY);
  e->version = g_strdup (version);
  e->options = g_strdup_printf ("quiet stagehand=/stagehand/deploy/%s", deployment);
  return e;
}

/* The menu after v2, the new default with 3 tries, used them all. */
static GPtrArray *
fell_back_menu (const char *counter)
{
  GPtrArray *entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_autofree char *name = g_strdup_printf ("stagehand-2-demo-2%s.conf", counter);
  g_ptr_array_add (entries, entry ("stagehand-1-demo-1.conf", "1-1.0", "demo/1"));
  g_ptr_array_add (entries, entry (name, "2-2.0", "demo/2"));
  boot_entries_sort (entries);
  return entries;
}

static void
test_default_out_of_tries_while_another_runs_failed (void)
{
  g_autoptr (GPtrArray) entries = fell_back_menu ("+0-3");
  g_autoptr (FailedBoot) f = boot_counting_assess (entries, "demo/1", NULL);
  g_assert_nonnull (f);
  g_assert_cmpstr (f->deployment, ==, "demo/2");
  g_assert_cmpstr (f->entry, ==, "stagehand-2-demo-2+0-3.conf");
  g_assert_cmpstr (f->entry_id, ==, "stagehand-2-demo-2.conf");
  g_assert_cmpuint (f->tries, ==, 3);
  g_assert_cmpstr (f->running, ==, "demo/1");
  g_autofree char *text = failed_boot_describe (f);
  g_assert_cmpstr (text, ==, "demo/2 failed to boot 3 times; running demo/1");
}

static void
test_last_try_that_runs_is_no_failure (void)
{
  /* The third try renamed it to +0-3 and then booted it: this boot may
   * still reach boot-complete.target and be blessed. */
  g_autoptr (GPtrArray) entries = fell_back_menu ("+0-3");
  g_autoptr (FailedBoot) f = boot_counting_assess (entries, "demo/2", NULL);
  g_assert_null (f);
}

static void
test_tries_left_or_no_counter_is_no_failure (void)
{
  static const char *const counters[] = { "+1-2", "+3", "", "+03-00" };
  for (guint i = 0; i < G_N_ELEMENTS (counters); i++)
    {
      g_autoptr (GPtrArray) entries = fell_back_menu (counters[i]);
      g_autoptr (FailedBoot) f = boot_counting_assess (entries, "demo/1", NULL);
      g_test_message ("counter \"%s\"", counters[i]);
      g_assert_null (f);
    }
}

static void
test_loader_entry_selected_is_the_boot_loaders_word (void)
{
  g_autoptr (GPtrArray) entries = fell_back_menu ("+0-3");
  /* It chose the failed entry (an older systemd-boot reports the name
   * with the counter it had): not a fallback, whatever the command line. */
  g_autoptr (FailedBoot) chose_it
      = boot_counting_assess (entries, "demo/1", "stagehand-2-demo-2+1-2.conf");
  g_assert_null (chose_it);
  /* It chose another entry: a fallback, even with no stagehand= to go by. */
  g_autoptr (FailedBoot) chose_other
      = boot_counting_assess (entries, NULL, "stagehand-1-demo-1.conf");
  g_assert_nonnull (chose_other);
  g_assert_cmpstr (chose_other->deployment, ==, "demo/2");
  g_assert_null (chose_other->running);
  g_autofree char *text = failed_boot_describe (chose_other);
  g_assert_cmpstr (text, ==, "demo/2 failed to boot 3 times");
}

static void
test_only_the_default_as_written_counts (void)
{
  /* A deployment that failed earlier and is no longer the default (a later
   * finalize made demo/3 the default) is not this boot's news. */
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify)boot_entry_free);
  g_ptr_array_add (entries, entry ("stagehand-3-demo-3.conf", "3-3.0", "demo/3"));
  g_ptr_array_add (entries, entry ("stagehand-2-demo-1.conf", "2-1.0", "demo/1"));
  g_ptr_array_add (entries, entry ("stagehand-1-demo-2+0-3.conf", "1-2.0", "demo/2"));
  boot_entries_sort (entries);
  g_autoptr (FailedBoot) f = boot_counting_assess (entries, "demo/3", NULL);
  g_assert_null (f);
  g_autoptr (GPtrArray) none = g_ptr_array_new ();
  g_autoptr (FailedBoot) empty = boot_counting_assess (none, "demo/1", NULL);
  g_assert_null (empty);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/boot-counting/default-out-of-tries-while-another-runs-failed",
                   test_default_out_of_tries_while_another_runs_failed);
  g_test_add_func ("/boot-counting/last-try-that-runs-is-no-failure",
                   test_last_try_that_runs_is_no_failure);
  g_test_add_func ("/boot-counting/tries-left-or-no-counter-is-no-failure",
                   test_tries_left_or_no_counter_is_no_failure);
  g_test_add_func ("/boot-counting/loader-entry-selected-is-the-boot-loaders-word",
                   test_loader_entry_selected_is_the_boot_loaders_word);
  g_test_add_func ("/boot-counting/only-the-default-as-written-counts",
                   test_only_the_default_as_written_counts);
  return g_test_run ();
}

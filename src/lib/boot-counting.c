#include "config.h"

#include "boot-counting.h"
#include "errors.h"
#include "fsutil.h"

#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>

/* systemd-boot embeds this in its binary (its .sdmagic section), and
 * LoaderInfo starts with "systemd-boot". */
#define SYSTEMD_BOOT_SIGNATURE "#### LoaderInfo: systemd-boot "
/* A boot loader binary is well below this; anything bigger is not one. */
#define MAX_LOADER_SIZE (16 * 1024 * 1024)

void
failed_boot_free (FailedBoot *failed)
{
  if (failed == NULL)
    return;
  g_free (failed->deployment);
  g_free (failed->entry);
  g_free (failed->entry_id);
  g_free (failed->running);
  g_free (failed);
}

const char *
boot_counting_efivars_dir (Sysroot *self)
{
  const char *debug = g_getenv ("STAGEHAND_DEBUG_EFIVARS_DIR");
  if (debug != NULL)
    return debug;
  /* Another sysroot (an image build, a test) is not what the firmware
   * booted: this machine's variables say nothing about it. */
  return self->is_host ? "/sys/firmware/efi/efivars" : NULL;
}

char *
boot_counting_read_efivar (Sysroot *self, const char *name)
{
  const char *dir = boot_counting_efivars_dir (self);
  if (dir == NULL)
    return NULL;
  g_autofree char *path = g_strdup_printf ("%s/%s-" EFI_LOADER_GUID, dir, name);
  g_autofree char *data = NULL;
  gsize len = 0;
  /* efivarfs: 4 bytes of attributes, then the value, here UTF-16LE. */
  if (!g_file_get_contents (path, &data, &len, NULL) || len < 4 || (len - 4) % 2 != 0)
    return NULL;
  gsize n = (len - 4) / 2;
  g_autofree gunichar2 *utf16 = g_new0 (gunichar2, n + 1);
  for (gsize i = 0; i < n; i++)
    utf16[i] = (gunichar2)((guchar)data[4 + 2 * i] | ((guchar)data[5 + 2 * i] << 8));
  /* Stops at the terminating NUL. */
  return g_utf16_to_utf8 (utf16, (glong)n, NULL, NULL, NULL);
}

/* Opens the subdirectory of @dfd whose name is @name in any case (the ESP
 * is vfat, where "EFI" and "efi" are one; elsewhere, as in tests, they are
 * not). -1 when there is none. */
static int
open_dir_nocase (int dfd, const char *name, char **ret_name)
{
  g_autoptr (GPtrArray) names = NULL;
  if (dfd < 0 || !fs_list_dir (dfd, name, &names, NULL))
    return -1;
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      autofd fd = -1;
      if (g_ascii_strcasecmp (n, name) == 0 && fs_opendir_at (dfd, n, &fd, NULL))
        {
          if (ret_name)
            *ret_name = g_strdup (n);
          return fd_steal (&fd);
        }
    }
  return -1;
}

static gboolean
has_prefix_nocase (const char *s, const char *prefix)
{
  return g_ascii_strncasecmp (s, prefix, strlen (prefix)) == 0;
}

static gboolean
has_suffix_nocase (const char *s, const char *suffix)
{
  gsize len = strlen (s), slen = strlen (suffix);
  return len >= slen && g_ascii_strcasecmp (s + len - slen, suffix) == 0;
}

/* The first file in @dfd named <prefix>*.efi (any case) that is
 * systemd-boot: with @need_signature, only one that holds its signature. */
static char *
find_loader_binary (int dfd, const char *prefix, gboolean need_signature)
{
  g_autoptr (GPtrArray) names = NULL;
  if (!fs_list_dir (dfd, prefix, &names, NULL))
    return NULL;
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      if (!has_prefix_nocase (n, prefix) || !has_suffix_nocase (n, ".efi"))
        continue;
      struct stat st;
      if (fstatat (dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
        continue;
      if (!need_signature)
        return g_strdup (n);
      g_autofree char *data = NULL;
      gsize len = 0;
      if (!fs_read_file_at (dfd, n, MAX_LOADER_SIZE, &data, &len, NULL))
        continue;
      if (memmem (data, len, SYSTEMD_BOOT_SIGNATURE, strlen (SYSTEMD_BOOT_SIGNATURE)) != NULL)
        return g_strdup (n);
    }
  return NULL;
}

char *
boot_counting_find_systemd_boot (Sysroot *self)
{
  g_autofree char *info = boot_counting_read_efivar (self, "LoaderInfo");
  if (info != NULL)
    return g_str_has_prefix (info, "systemd-boot")
               ? g_strdup_printf ("the LoaderInfo EFI variable (%s)", info)
               : NULL;

  g_autofree char *efi_name = NULL, *sub_name = NULL;
  autofd efi = open_dir_nocase (self->boot_dfd, "EFI", &efi_name);
  if (efi < 0)
    return NULL;
  /* Where `bootctl install` puts it. */
  autofd systemd = open_dir_nocase (efi, "systemd", &sub_name);
  if (systemd >= 0)
    {
      g_autofree char *bin = find_loader_binary (systemd, "systemd-boot", FALSE);
      if (bin != NULL)
        return g_strdup_printf ("%s/%s/%s/%s", self->boot_path, efi_name, sub_name, bin);
    }
  /* The removable-media path, which may hold any boot loader. */
  g_clear_pointer (&sub_name, g_free);
  autofd fallback = open_dir_nocase (efi, "BOOT", &sub_name);
  if (fallback >= 0)
    {
      g_autofree char *bin = find_loader_binary (fallback, "BOOT", TRUE);
      if (bin != NULL)
        return g_strdup_printf ("%s/%s/%s/%s", self->boot_path, efi_name, sub_name, bin);
    }
  return NULL;
}

guint
boot_counting_tries (Sysroot *self, char **ret_reason)
{
  g_autofree char *reason = NULL;
  guint tries;
  if (self->config->boot_counting_tries != CONFIG_TRIES_UNSET)
    {
      tries = (guint)self->config->boot_counting_tries;
      reason = g_strdup_printf ("boot-counting-tries=%u in stagehand.conf", tries);
    }
  else
    {
      g_autofree char *where = boot_counting_find_systemd_boot (self);
      tries = where != NULL ? BOOT_COUNTING_DEFAULT_TRIES : 0;
      reason = where != NULL ? g_strdup_printf ("systemd-boot found: %s", where)
                             : g_strdup ("no systemd-boot found (LoaderInfo, <boot>/EFI)");
    }
  if (ret_reason != NULL)
    *ret_reason = g_steal_pointer (&reason);
  return tries;
}

FailedBoot *
boot_counting_assess (GPtrArray *entries, const char *running, const char *selected)
{
  const BootEntry *written_default = NULL;
  for (guint i = 0; i < entries->len; i++)
    {
      const BootEntry *e = entries->pdata[i];
      if (boot_entry_is_ours (e)
          && (written_default == NULL || boot_entry_compare_as_written (e, written_default) < 0))
        written_default = e;
    }
  if (written_default == NULL || !boot_entry_is_exhausted (written_default))
    return NULL;

  g_autofree char *karg = boot_entry_get_deployment (written_default);
  g_autofree char *deployment = deployment_name_from_karg (karg);
  gboolean ran_it;
  if (selected != NULL)
    ran_it = boot_entry_name_equal (selected, written_default->filename);
  else
    ran_it = running != NULL && g_strcmp0 (running, deployment) == 0;
  if (ran_it)
    return NULL;

  FailedBoot *failed = g_new0 (FailedBoot, 1);
  failed->deployment = deployment ? g_steal_pointer (&deployment) : g_strdup (karg);
  failed->entry = g_strdup (written_default->filename);
  failed->entry_id = g_strdup (written_default->id);
  failed->tries = (guint)written_default->counter.tries_done;
  failed->running = g_strdup (running);
  return failed;
}

/* Whether the record of the last reported failed boot names @failed. */
static gboolean
failed_boot_was_reported (Sysroot *self, const FailedBoot *failed)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (self->state_dfd < 0
      || !fs_read_file_at_optional (self->state_dfd, FAILED_BOOT_FILE, FS_READ_MAX_SMALL, &data,
                                    &len, NULL)
      || data == NULL)
    return FALSE;
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, NULL))
    return FALSE;
  g_autofree char *deployment = g_key_file_get_string (kf, "failed-boot", "deployment", NULL);
  g_autofree char *entry = g_key_file_get_string (kf, "failed-boot", "entry", NULL);
  return g_strcmp0 (deployment, failed->deployment) == 0 && entry != NULL
         && boot_entry_name_equal (entry, failed->entry_id);
}

FailedBoot *
sysroot_assess_boot (Sysroot *self)
{
  g_assert (self->loaded);
  g_autofree char *selected = boot_counting_read_efivar (self, "LoaderEntrySelected");
  g_autofree char *running = sysroot_booted_name (self);
  FailedBoot *failed = boot_counting_assess (self->boot_config->entries, running, selected);
  if (failed != NULL)
    failed->reported = failed_boot_was_reported (self, failed);
  return failed;
}

char *
failed_boot_describe (const FailedBoot *failed)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "%s failed to boot %u time%s", failed->deployment, failed->tries,
                          failed->tries == 1 ? "" : "s");
  if (failed->running != NULL)
    g_string_append_printf (s, "; running %s", failed->running);
  return g_string_free (s, FALSE);
}

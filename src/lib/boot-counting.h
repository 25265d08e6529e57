/* Automatic boot assessment (systemd-boot's boot counting): how many tries
 * a new default gets, and whether the default the last finalize wrote ran
 * out of tries so the boot loader fell back to another entry.
 *
 * The counters themselves are part of the entry file names; bls.h parses
 * them. Here is what stagehand makes of them: the setting
 * (boot-counting-tries= in stagehand.conf, else 3 where systemd-boot is
 * found, else off), the boot loader's EFI variables (LoaderInfo,
 * LoaderEntrySelected), and the assessment of the running boot.
 */
#pragma once

#include <glib.h>

#include "bls.h"
#include "sysroot.h"

G_BEGIN_DECLS

/* Tries a new default gets when stagehand.conf does not say and the boot
 * loader is systemd-boot (ostree's and systemd's documentation use 3). */
#define BOOT_COUNTING_DEFAULT_TRIES 3

/* The vendor GUID of the Boot Loader Interface variables. */
#define EFI_LOADER_GUID "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

/* <sysroot>/stagehand/failed-boot-reported: the failed boot the boot-time
 * check last reported, so it is reported once. */
#define FAILED_BOOT_FILE "failed-boot-reported"

/* The tries a new default gets (0: boot counting is off), and in
 * *@ret_reason (may be NULL) why, for status: boot-counting-tries= when
 * set; otherwise BOOT_COUNTING_DEFAULT_TRIES when systemd-boot is the boot
 * loader (the LoaderInfo EFI variable, else a systemd-boot binary in
 * <boot>/EFI, see boot_counting_find_systemd_boot()), else 0. */
guint boot_counting_tries (Sysroot *self, char **ret_reason);

/* Where systemd-boot was found, or NULL: the LoaderInfo EFI variable when
 * there is one (it names the boot loader that booted this system; any
 * other there means "not systemd-boot"), else <boot>/EFI/systemd/
 * systemd-boot*.efi, else <boot>/EFI/BOOT/BOOT*.EFI holding systemd-boot's
 * "#### LoaderInfo: systemd-boot " signature (names compared without
 * case, as on the vfat ESP). */
char *boot_counting_find_systemd_boot (Sysroot *self);

/* The directory of the EFI variables (efivarfs) for @self:
 * $STAGEHAND_DEBUG_EFIVARS_DIR when set (tests, any sysroot), else
 * /sys/firmware/efi/efivars for the host sysroot, else NULL. */
const char *boot_counting_efivars_dir (Sysroot *self);

/* A Boot Loader Interface variable (UTF-16 in efivarfs) as UTF-8, or NULL
 * when there is none or it cannot be read. */
char *boot_counting_read_efivar (Sysroot *self, const char *name);

typedef struct
{
  char *deployment;  /* "<os>/<id>" of the default that ran out of tries */
  char *entry;       /* its entry's file name now ("...+0-3.conf") */
  char *entry_id;    /* its entry's identity ("....conf") */
  guint tries;       /* how often the boot loader tried it */
  char *running;     /* "<os>/<id>" this boot runs, NULL if unknown */
  gboolean reported; /* the boot-time check reported it already */
} FailedBoot;

void failed_boot_free (FailedBoot *failed);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FailedBoot, failed_boot_free)

/* The assessment, from the live entries (BootEntry*, any order): the first
 * stagehand entry in the order it was written (counters ignored) is the
 * default the last finalize or rollback made. It failed when its counter
 * has no tries left ("+0-3") and this boot did not come from it: by
 * @selected (LoaderEntrySelected, the boot loader's own word) where there
 * is one, else by @running (the booted deployment, "<os>/<id>"), which may
 * be NULL (not known: then it failed all the same; the boot loader will not
 * choose it). The last try renames the entry to +0 before it boots, so a
 * boot that runs it on its last try is not a failure. Returns NULL when
 * nothing failed. */
FailedBoot *boot_counting_assess (GPtrArray *entries, const char *running, const char *selected);

/* boot_counting_assess() of a loaded sysroot, with this boot's
 * LoaderEntrySelected and booted deployment; ->reported from the record. */
FailedBoot *sysroot_assess_boot (Sysroot *self);

/* "demo/2 failed to boot 3 times; running demo/1" */
char *failed_boot_describe (const FailedBoot *failed);

G_END_DECLS

/* A sysroot: the directory fds everything else works relative to, its
 * configuration, and its state (deployments, the staged one, the booted
 * one, the live boot configuration, the last finalize verdict).
 */
#pragma once

#include <glib.h>

#include "boot-config.h"
#include "conf.h"
#include "lock.h"
#include "origin.h"
#include "pending.h"
#include "staged.h"
#include "verdict.h"

G_BEGIN_DECLS

#define STATE_DIR "stagehand"
#define DEPLOY_DIR "deploy"

typedef struct
{
  char *os;
  char *id;
  Origin *origin;
  gboolean is_booted;
  gboolean is_staged;
  gboolean is_default;
  int entry_index; /* position in the live menu, -1 if not in it */
} Deployment;

typedef struct
{
  char *path;            /* as given, for messages */
  char *boot_path;       /* as given or <path>/boot */
  char *run_path;        /* /run/stagehand or <path>/run/stagehand */
  gboolean is_host;      /* the sysroot is the running system's / */
  gboolean without_boot; /* opened by sysroot_open_without_boot() */
  int sysroot_dfd;
  int boot_dfd;
  int state_dfd; /* <sysroot>/stagehand, -1 if not initialised */
  Config *config;
  SysrootLock *lock;

  /* Filled by sysroot_load(). */
  gboolean loaded;
  GPtrArray *deployments; /* Deployment*: staged first, then menu order, then newest first */
  Deployment *booted;
  Deployment *staged;
  Deployment *default_deployment;
  DeploymentRecord *staged_record; /* staged.h: staged_time in seconds */
  BootConfig *boot_config;
  Verdict *last_verdict;
  /* pending.h: staged_time in µs; filled by sysroot_load_pending() only */
  DeploymentRecord *pending;
  char *booted_karg; /* the stagehand= value on the kernel command line, or NULL */
} Sysroot;

void sysroot_free (Sysroot *sysroot);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Sysroot, sysroot_free)

/* Opens @path (default "/") and @boot_path (default <path>/boot) as
 * directory fds. Opening the boot directory triggers an automount there. */
gboolean sysroot_open (const char *path, const char *boot_path, Sysroot **ret_sysroot,
                       GError **error);

/* Opens only the sysroot: for work that needs nothing from <boot>, so an
 * automounted /boot is not triggered (the boot-time verdict check). Such a
 * sysroot cannot be loaded. */
gboolean sysroot_open_without_boot (const char *path, Sysroot **ret_sysroot, GError **error);

/* Opens the boot directory of a sysroot opened without it (the boot-time
 * check, once it knows it must look at the entries), so it can be loaded. */
gboolean sysroot_open_boot (Sysroot *self, GError **error);

/* (Re)reads just the last finalize verdict into ->last_verdict. */
gboolean sysroot_load_verdict (Sysroot *self, GError **error);

/* (Re)reads just the staged-pending marker into ->pending (NULL: none). A
 * marker that does not parse is a STAGEHAND_ERROR_CORRUPT error. */
gboolean sysroot_load_pending (Sysroot *self, GError **error);

/* Removes the staged-pending marker, durably; a missing one is success. */
gboolean sysroot_remove_pending (Sysroot *self, GError **error);

/* Whether the runtime directory holds a staged record (parsed or not). */
gboolean sysroot_has_staged_record (Sysroot *self, gboolean *ret_exists, GError **error);

/* The staged record alone, parsed (NULL: none), without loading the rest of
 * the state; STAGEHAND_ERROR_CORRUPT when it does not parse. */
gboolean sysroot_read_staged_record (Sysroot *self, DeploymentRecord **ret_record, GError **error);

/* Fails with STAGEHAND_ERROR_NOT_INITIALIZED and a hint unless `init` ran. */
gboolean sysroot_require_initialized (Sysroot *self, GError **error);

/* Takes the sysroot lock for @operation, waiting at most @timeout_sec. */
gboolean sysroot_lock (Sysroot *self, const char *operation, guint timeout_sec,
                       LockWaitFunc wait_func, gpointer wait_data, GError **error);

/* (Re)reads the state. Call with the lock held for anything that acts on it. */
gboolean sysroot_load (Sysroot *self, GError **error);

/* Opens (creating with @create) the runtime directory. */
gboolean sysroot_open_run_dir (Sysroot *self, gboolean create, int *ret_fd, GError **error);

/* "<os>/<id>" */
char *deployment_name (const Deployment *d);

/* "<os>/<id>" from a stagehand= value "/stagehand/deploy/<os>/<id>", or
 * NULL when it names no deployment. */
char *deployment_name_from_karg (const char *value);

/* The relative directory of a deployment below the sysroot: "stagehand/deploy/<os>/<id>". */
char *deployment_path (const char *os, const char *id);

/* Opens the deployment tree. */
gboolean sysroot_open_deployment (Sysroot *self, const Deployment *d, int *ret_fd, GError **error);

Deployment *sysroot_find_deployment (Sysroot *self, const char *os, const char *id);

/* The kernel command line that names the booted deployment: /proc/cmdline
 * for the host sysroot. STAGEHAND_DEBUG_CMDLINE, when set, replaces it for
 * any sysroot (tests and image builds use it to pretend a boot). */
char *sysroot_read_cmdline (Sysroot *self);

/* "<os>/<id>" of the booted deployment as the kernel command line names it
 * (whether or not it exists), or NULL. */
char *sysroot_booted_name (Sysroot *self);

/* This boot's id (/proc/sys/kernel/random/boot_id), NULL if unreadable. */
char *sysroot_boot_id (void);

G_END_DECLS

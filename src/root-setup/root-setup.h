/* stagehand-root-setup: makes the deployment named by stagehand= the root
 * of the booted system, in the initramfs, between the mount of the
 * physical root and the switch to it. libc only (see STYLE.md, "Where new
 * capabilities live"); docs/design.md, "Booting a deployment", has the
 * layout and the reasons.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ROOT_SETUP_NAME "stagehand-root-setup"

/* Exit statuses: the boot scripts, and boot counting later, rely on them. */
#define ROOT_SETUP_EXIT_DONE 0   /* set up, or nothing to do (no stagehand=) */
#define ROOT_SETUP_EXIT_FAILED 1 /* one line on stderr and in the kernel log */
#define ROOT_SETUP_EXIT_USAGE 2  /* a packaging bug: the scripts call it wrong */

#define ROOT_SETUP_DEFAULT_CMDLINE "/proc/cmdline"
#define ROOT_SETUP_DEFAULT_RUN_DIR "/run/stagehand"
/* Where the physical root ends up inside the new root. */
#define ROOT_SETUP_SYSROOT_DIR "sysroot"
/* The marker in the run directory: the running system's stagehand reads it
 * to know that it is booted into a deployment and where the sysroot is. */
#define ROOT_SETUP_MARKER "booted"

typedef struct
{
  const char *cmdline_path; /* --cmdline=FILE, default /proc/cmdline */
  const char *run_dir;      /* --run-dir=DIR, default /run/stagehand */
  const char *root;         /* ROOT: where the physical root is mounted */
  bool help;
} RootSetupArgs;

/* Parses the program's arguments. Returns NULL, or a static reason for a
 * usage error (with *ret_bad naming the argument, possibly NULL). */
const char *root_setup_parse_args (int argc, char **argv, RootSetupArgs *ret_args,
                                   const char **ret_bad);

/* Copies the directory @src_dfd's content (not the directory itself) into
 * the empty directory @dst_dfd with owners, modes, times and extended
 * attributes; device nodes and sockets are left out (they have no place in
 * a persistent /var). Returns 0 or -errno, with *ret_where naming the entry
 * (malloc'd, may be NULL). */
int tree_copy (int src_dfd, int dst_dfd, char **ret_where);

/* Removes @name below @dfd and everything in it; a missing one is fine.
 * Returns 0 or -errno. */
int tree_remove (int dfd, const char *name);

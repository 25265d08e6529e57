/* stagehand-root-setup [--cmdline=FILE] [--run-dir=DIR] ROOT
 *
 * Run in the initramfs after the physical root is mounted at ROOT (/root
 * with initramfs-tools, /sysroot with dracut) and before the switch to it.
 * Without stagehand= on the kernel command line it does nothing. With
 * stagehand=/stagehand/deploy/<os>/<id> it leaves at ROOT:
 *
 *   /         the deployment tree, read-only (bind mount)
 *   /usr      the same, read-only once more as a mount of its own
 *   /etc      the deployment's own /etc, writable (bind mount)
 *   /var      <physical root>/stagehand/var/<os>, writable (bind mount)
 *   /sysroot  the physical root (moved there)
 *
 * and writes <run-dir>/booted. It plans before it acts: every check that
 * can refuse the boot (the path, the tree, its origin, the mount points)
 * runs before the first change, so a refused boot leaves ROOT as it was.
 * docs/design.md ("Booting a deployment") explains the layout.
 */
#include "deployment-karg.h"
#include "root-setup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define CMDLINE_MAX (64 * 1024)

/* The one line a failure gets, on stderr (the console) and in the kernel
 * log (which the serial console and the next boot's journal keep). */
static void log_line (int level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
log_line (int level, const char *fmt, ...)
{
  char line[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  if (level <= 3)
    fprintf (stderr, ROOT_SETUP_NAME ": %s\n", line);
  int kmsg = open ("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (kmsg >= 0)
    {
      /* One write() per record: dprintf() gives up on /dev/kmsg, whose
       * lseek() fails with EINVAL. Best effort: without a kernel log the
       * console line still says it. */
      char record[1100];
      int n = snprintf (record, sizeof record, "<%d>" ROOT_SETUP_NAME ": %s\n", level, line);
      if (n > 0)
        (void)!write (kmsg, record, (size_t)n < sizeof record ? (size_t)n : sizeof record - 1);
      close (kmsg);
    }
}

#define fail(...) (log_line (3, __VA_ARGS__), ROOT_SETUP_EXIT_FAILED)

typedef struct
{
  const char *root;
  const char *karg;     /* the stagehand= value, for messages */
  char deployment[160]; /* "<os>/<id>" */
  char os[65];
  char tree_path[512]; /* for messages: ROOT/stagehand/deploy/<os>/<id> */
  int root_fd;
  int state_fd;  /* ROOT/stagehand */
  int os_fd;     /* ROOT/stagehand/deploy/<os> */
  int tree_fd;   /* the deployment */
  int etc_fd;    /* its etc */
  int var_fd;    /* ROOT/stagehand/var/<os>, once it exists */
  int image_var; /* the deployment's var: the mount point, and the first boot's source */
} Plan;

static char *
read_cmdline (const char *path, int *ret_errno)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      *ret_errno = errno;
      return NULL;
    }
  char *buf = malloc (CMDLINE_MAX + 1);
  size_t len = 0;
  ssize_t n = 0;
  while (buf != NULL && len < CMDLINE_MAX && (n = read (fd, buf + len, CMDLINE_MAX - len)) > 0)
    len += n;
  *ret_errno = buf == NULL ? ENOMEM : n < 0 ? errno : 0;
  close (fd);
  if (*ret_errno != 0)
    {
      free (buf);
      return NULL;
    }
  buf[len] = '\0';
  return buf;
}

/* A directory below @dfd, never through a symlink. */
static int
open_dir (int dfd, const char *name)
{
  return openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Why open_dir (@dfd, @name) failed with @errsv. */
static const char *
open_dir_reason (int dfd, const char *name, int errsv)
{
  struct stat st;
  if ((errsv == ENOTDIR || errsv == ELOOP) && fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
      && S_ISLNK (st.st_mode))
    return "a symlink, not followed";
  return errsv == ENOTDIR ? "not a directory" : strerror (errsv);
}

/* Everything that can refuse the boot, before anything changes. */
static int
plan_checks (Plan *p, const char *karg)
{
  const char *os, *id;
  size_t os_len;
  const char *reason = deployment_karg_check (karg, &os, &os_len, &id);
  if (reason != NULL)
    return fail ("refusing " DEPLOYMENT_KARG_KEY "=%s: %s", karg, reason);
  p->karg = karg;
  memcpy (p->os, os, os_len);
  p->os[os_len] = '\0';
  snprintf (p->deployment, sizeof p->deployment, "%s/%s", p->os, id);
  snprintf (p->tree_path, sizeof p->tree_path, "%s%s", p->root, karg);

  p->root_fd = open (p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p->root_fd < 0)
    return fail ("booting %s: opening the physical root %s: %s", karg, p->root, strerror (errno));
  /* stagehand/deploy/<os>/<id>, one component at a time, no symlinks. */
  int deploy_fd = -1;
  int *const fds[] = { &p->state_fd, &deploy_fd, &p->os_fd, &p->tree_fd };
  const char *const names[] = { "stagehand", "deploy", p->os, id };
  int parent = p->root_fd;
  for (size_t i = 0; i < 4; i++)
    {
      *fds[i] = open_dir (parent, names[i]);
      if (*fds[i] < 0)
        return fail ("booting %s: deployment tree %s: %s", karg, p->tree_path,
                     open_dir_reason (parent, names[i], errno));
      parent = *fds[i];
    }
  close (deploy_fd);

  /* The origin is written last when a deployment is made: without it the
   * tree may be half imported. */
  char origin[32];
  snprintf (origin, sizeof origin, "%s.origin", id);
  struct stat st;
  if (fstatat (p->os_fd, origin, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return fail ("booting %s: %s.origin: %s (an incomplete deployment)", karg, p->tree_path,
                 strerror (errno));
  if (!S_ISREG (st.st_mode))
    return fail ("booting %s: %s.origin: not a regular file (an incomplete deployment)", karg,
                 p->tree_path);

  /* The mount points, inside the tree: it is never written to, so they
   * must be there already (stagehand's install gives an image /sysroot).
   * dev, proc, sys and run are where the initramfs moves its own mounts
   * before the switch: without them the boot would fail later, obscurely. */
  static const char *const needed[]
      = { "etc", "usr", "var", ROOT_SETUP_SYSROOT_DIR, "dev", "proc", "sys", "run" };
  for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
    {
      int fd = open_dir (p->tree_fd, needed[i]);
      if (fd < 0)
        return fail ("booting %s: %s/%s: %s%s", karg, p->tree_path, needed[i],
                     open_dir_reason (p->tree_fd, needed[i], errno),
                     strcmp (needed[i], ROOT_SETUP_SYSROOT_DIR) == 0
                         ? " (install stagehand into the image: it provides /sysroot)"
                         : "");
      if (strcmp (needed[i], "etc") == 0)
        p->etc_fd = fd;
      else if (strcmp (needed[i], "var") == 0)
        p->image_var = fd;
      else
        close (fd);
    }
  return ROOT_SETUP_EXIT_DONE;
}

/* The deployment's / is read-only, so the physical root must be writable
 * for /etc and /var, which live on it: an initramfs mounts it read-only
 * when the kernel command line says `ro` (Debian's default). */
static int
make_physical_root_writable (Plan *p)
{
  struct statvfs sv;
  if (fstatvfs (p->root_fd, &sv) < 0)
    return fail ("booting %s: checking %s: %s", p->karg, p->root, strerror (errno));
  if (!(sv.f_flag & ST_RDONLY))
    return ROOT_SETUP_EXIT_DONE;
  unsigned long keep = 0;
  keep |= (sv.f_flag & ST_NOSUID) ? MS_NOSUID : 0;
  keep |= (sv.f_flag & ST_NODEV) ? MS_NODEV : 0;
  keep |= (sv.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0;
  keep |= (sv.f_flag & ST_NOATIME) ? MS_NOATIME : 0;
  keep |= (sv.f_flag & ST_RELATIME) ? MS_RELATIME : 0;
  if (mount (NULL, p->root, NULL, MS_REMOUNT | MS_SILENT | keep, NULL) < 0)
    return fail ("booting %s: making the physical root %s writable: %s", p->karg, p->root,
                 strerror (errno));
  return ROOT_SETUP_EXIT_DONE;
}

/* <physical root>/stagehand/var/<os>: the os's persistent /var, created on
 * its first boot from the image's /var (copied into a temp directory, then
 * renamed: an interrupted first boot leaves only the temp, removed next
 * time). */
static int
open_or_create_var (Plan *p)
{
  if (mkdirat (p->state_fd, "var", 0755) < 0 && errno != EEXIST)
    return fail ("booting %s: creating %s/stagehand/var: %s", p->karg, p->root, strerror (errno));
  int var_root = open_dir (p->state_fd, "var");
  if (var_root < 0)
    return fail ("booting %s: %s/stagehand/var: %s", p->karg, p->root,
                 open_dir_reason (p->state_fd, "var", errno));
  p->var_fd = open_dir (var_root, p->os);
  if (p->var_fd >= 0 || errno != ENOENT)
    {
      int r = ROOT_SETUP_EXIT_DONE;
      if (p->var_fd < 0)
        r = fail ("booting %s: %s/stagehand/var/%s: %s", p->karg, p->root, p->os,
                  open_dir_reason (var_root, p->os, errno));
      close (var_root);
      return r;
    }

  char tmp[80];
  snprintf (tmp, sizeof tmp, ".%s.new", p->os);
  int r = tree_remove (var_root, tmp);
  char *where = NULL;
  int tmp_fd = -1;
  if (r == 0 && mkdirat (var_root, tmp, 0755) < 0)
    r = -errno;
  if (r == 0 && (tmp_fd = open_dir (var_root, tmp)) < 0)
    r = -errno;
  if (r == 0)
    {
      struct stat st;
      r = tree_copy (p->image_var, tmp_fd, &where);
      /* The directory itself takes the image's /var owner and mode. */
      if (r == 0 && fstat (p->image_var, &st) == 0
          && (fchown (tmp_fd, st.st_uid, st.st_gid) < 0 || fchmod (tmp_fd, st.st_mode & 07777) < 0))
        r = -errno;
      if (r == 0 && syncfs (tmp_fd) < 0)
        r = -errno;
    }
  if (r == 0 && renameat (var_root, tmp, var_root, p->os) < 0)
    r = -errno;
  if (r == 0 && fsync (var_root) < 0)
    r = -errno;
  if (tmp_fd >= 0)
    close (tmp_fd);
  if (r < 0)
    {
      int ret
          = fail ("booting %s: creating /var %s/stagehand/var/%s from the image's /var%s%s: %s",
                  p->karg, p->root, p->os, where ? " at " : "", where ? where : "", strerror (-r));
      free (where);
      close (var_root);
      return ret;
    }
  p->var_fd = open_dir (var_root, p->os);
  int errsv = errno;
  close (var_root);
  if (p->var_fd < 0)
    return fail ("booting %s: %s/stagehand/var/%s: %s", p->karg, p->root, p->os, strerror (errsv));
  log_line (6, "created /var for %s at %s/stagehand/var/%s from the image's /var", p->os, p->root,
            p->os);
  return ROOT_SETUP_EXIT_DONE;
}

static void
fd_path (int fd, char *buf, size_t size)
{
  snprintf (buf, size, "/proc/self/fd/%d", fd);
}

/* Per-mount flags of a bind mount made read-only: MS_REMOUNT|MS_BIND sets
 * all of them, so the ones the mount had are passed again. */
static unsigned long
bind_flags_of (const char *path)
{
  struct statvfs sv;
  unsigned long flags = 0;
  if (statvfs (path, &sv) == 0)
    {
      flags |= (sv.f_flag & ST_NOSUID) ? MS_NOSUID : 0;
      flags |= (sv.f_flag & ST_NODEV) ? MS_NODEV : 0;
      flags |= (sv.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0;
      flags |= (sv.f_flag & ST_NOATIME) ? MS_NOATIME : 0;
      flags |= (sv.f_flag & ST_RELATIME) ? MS_RELATIME : 0;
    }
  return flags;
}

static int
mount_failed (const Plan *p, const char *step, const char *tmp)
{
  return fail ("booting %s: %s (%s): %s", p->karg, step, tmp, strerror (errno));
}

/* The mounts. ROOT itself cannot be moved under a directory inside it, so
 * the new root is built at a temp mount point beside it (ostree-prepare-root
 * does the same with /sysroot.tmp): bind the deployment there, put /usr,
 * /etc and /var on it, move the physical root into its /sysroot, then move
 * the whole thing back to ROOT, where the initramfs switches to it. A
 * failure half-way fails the boot (the scripts stop there), so nothing is
 * unwound. */
static int
set_up_mounts (Plan *p)
{
  char tmp[600], target[700], src[64];
  snprintf (tmp, sizeof tmp, "%s.stagehand-tmp", p->root);
  /* A mount cannot be moved out of a shared parent (systemd makes / shared
   * in the initrd): the same fix ostree-prepare-root applies. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE | MS_SILENT, NULL) < 0)
    return mount_failed (p, "making / a private mount tree", tmp);
  if (mkdir (tmp, 0700) < 0 && errno != EEXIST)
    return mount_failed (p, "creating the temp mount point", tmp);

  fd_path (p->tree_fd, src, sizeof src);
  if (mount (src, tmp, NULL, MS_BIND | MS_SILENT, NULL) < 0)
    return mount_failed (p, "bind-mounting the deployment", tmp);
  unsigned long flags = bind_flags_of (tmp);

  /* /usr read-only as a mount of its own too: an image whose fstab lists /
   * gets / remounted writable by systemd-remount-fs (a plain remount resets
   * the per-mount read-only flag), and /usr must stay read-only then. */
  snprintf (target, sizeof target, "%s/usr", tmp);
  if (mount (target, target, NULL, MS_BIND | MS_SILENT, NULL) < 0
      || mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_SILENT | flags, NULL) < 0)
    return mount_failed (p, "bind-mounting /usr read-only", tmp);

  fd_path (p->etc_fd, src, sizeof src);
  snprintf (target, sizeof target, "%s/etc", tmp);
  if (mount (src, target, NULL, MS_BIND | MS_SILENT, NULL) < 0)
    return mount_failed (p, "bind-mounting /etc", tmp);

  fd_path (p->var_fd, src, sizeof src);
  snprintf (target, sizeof target, "%s/var", tmp);
  if (mount (src, target, NULL, MS_BIND | MS_SILENT, NULL) < 0)
    return mount_failed (p, "bind-mounting /var", tmp);

  if (mount (NULL, tmp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_SILENT | flags, NULL) < 0)
    return mount_failed (p, "making / read-only", tmp);

  snprintf (target, sizeof target, "%s/" ROOT_SETUP_SYSROOT_DIR, tmp);
  if (mount (p->root, target, NULL, MS_MOVE | MS_SILENT, NULL) < 0)
    return mount_failed (p, "moving the physical root to /sysroot", tmp);
  if (mount (tmp, p->root, NULL, MS_MOVE | MS_SILENT, NULL) < 0)
    return mount_failed (p, "moving the deployment to the root mount point", tmp);
  /* Only tidiness: an empty directory left in the initramfs harms nobody. */
  (void)rmdir (tmp);
  return ROOT_SETUP_EXIT_DONE;
}

/* <run-dir>/booted: which deployment this boot runs and where the physical
 * root is, for the running system's stagehand (its default --sysroot).
 * /run is a tmpfs the initramfs hands over to the booted system. */
static int
write_marker (const Plan *p, const char *run_dir, long long usec)
{
  char path[600], tmp[620];
  snprintf (path, sizeof path, "%s/" ROOT_SETUP_MARKER, run_dir);
  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  /* The run dir's parent (/run) exists in every initramfs. */
  if (mkdir (run_dir, 0755) < 0 && errno != EEXIST)
    return fail ("booting %s: creating %s: %s", p->karg, run_dir, strerror (errno));
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail ("booting %s: writing %s: %s", p->karg, tmp, strerror (errno));
  int n = dprintf (fd,
                   "# Written by " ROOT_SETUP_NAME " in the initramfs.\n"
                   "[booted]\n"
                   "deployment=%s\n"
                   "sysroot=/" ROOT_SETUP_SYSROOT_DIR "\n"
                   "setup-usec=%lld\n",
                   p->deployment, usec);
  int errsv = errno;
  if (close (fd) < 0 && n >= 0)
    {
      n = -1;
      errsv = errno;
    }
  if (n < 0 || rename (tmp, path) < 0)
    return fail ("booting %s: writing %s: %s", p->karg, path, strerror (n < 0 ? errsv : errno));
  return ROOT_SETUP_EXIT_DONE;
}

static long long
now_usec (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define EFIVARS_DIR "/sys/firmware/efi/efivars"
#define EFIVARFS_MAGIC 0xde5e81e4
/* systemd-boot's vendor GUID: the variable it sets when the entry it
 * started has a boot counter. */
#define BOOT_COUNT_VARIABLE "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define COUNTED_REBOOT_DELAY_SEC 5

/* Boot counting (docs/design.md, "Boot counting"): when systemd-boot is
 * counting the tries of the entry it started, a boot that cannot go on
 * reboots after a few seconds, so that the failed try is counted and, once
 * none are left, the previous deployment boots. An emergency shell would
 * wait for a person forever (issue 17). Only ever in an initramfs
 * (initramfs-tools' /conf/initramfs.conf, or /etc/initrd-release); tests
 * name another variable directory with STAGEHAND_DEBUG_EFIVARS_DIR and get
 * the line without the reboot. */
static void
reboot_if_counting (void)
{
  const char *debug_dir = getenv ("STAGEHAND_DEBUG_EFIVARS_DIR");
  const char *dir = debug_dir != NULL ? debug_dir : EFIVARS_DIR;
  struct statfs fs;
  if (debug_dir == NULL
      && (statfs (EFIVARS_DIR, &fs) != 0 || (unsigned long)fs.f_type != EFIVARFS_MAGIC)
      && access ("/sys/firmware/efi", F_OK) == 0)
    /* initramfs-tools does not mount efivarfs (systemd's initrd does);
     * without it, no variable can be seen: best effort. */
    (void)!mount ("efivarfs", EFIVARS_DIR, "efivarfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL);
  char path[600];
  snprintf (path, sizeof path, "%s/%s", dir, BOOT_COUNT_VARIABLE);
  if (access (path, F_OK) != 0)
    return;
  log_line (3, "boot counting is on (%s): rebooting in %d s, so the boot loader counts this try",
            BOOT_COUNT_VARIABLE, COUNTED_REBOOT_DELAY_SEC);
  if (debug_dir != NULL
      || (access ("/conf/initramfs.conf", F_OK) != 0 && access ("/etc/initrd-release", F_OK) != 0))
    return;
  sleep (COUNTED_REBOOT_DELAY_SEC);
  sync ();
  reboot (RB_AUTOBOOT);
}

int
main (int argc, char **argv)
{
  long long started = now_usec ();
  RootSetupArgs args;
  const char *bad;
  const char *usage = root_setup_parse_args (argc, argv, &args, &bad);
  if (usage != NULL)
    {
      if (bad != NULL)
        fprintf (stderr, ROOT_SETUP_NAME ": %s: %s\n", bad, usage);
      else
        fprintf (stderr, ROOT_SETUP_NAME ": %s\n", usage);
      return ROOT_SETUP_EXIT_USAGE;
    }
  if (args.help)
    {
      printf ("Usage: " ROOT_SETUP_NAME " [--cmdline=FILE] [--run-dir=DIR] ROOT\n\n"
              "Makes the deployment named by stagehand= on the kernel command line the\n"
              "root mounted at ROOT, with the physical root at ROOT/sysroot. Does nothing\n"
              "without stagehand=. Run in the initramfs before the switch to ROOT.\n");
      return ROOT_SETUP_EXIT_DONE;
    }

  int errsv;
  char *cmdline = read_cmdline (args.cmdline_path, &errsv);
  if (cmdline == NULL)
    return fail ("reading the kernel command line %s: %s", args.cmdline_path, strerror (errsv));
  char *karg = deployment_karg_find (cmdline);
  free (cmdline);
  if (karg == NULL)
    return ROOT_SETUP_EXIT_DONE; /* a plain root: not ours to touch */

  /* The fds stay open until exit: the kernel closes them. */
  Plan plan = { .root = args.root,
                .root_fd = -1,
                .state_fd = -1,
                .os_fd = -1,
                .tree_fd = -1,
                .etc_fd = -1,
                .var_fd = -1,
                .image_var = -1 };
  int r = plan_checks (&plan, karg);
  if (r == ROOT_SETUP_EXIT_DONE)
    r = make_physical_root_writable (&plan);
  if (r == ROOT_SETUP_EXIT_DONE)
    r = open_or_create_var (&plan);
  if (r == ROOT_SETUP_EXIT_DONE)
    r = set_up_mounts (&plan);
  long long usec = now_usec () - started;
  if (r == ROOT_SETUP_EXIT_DONE)
    r = write_marker (&plan, args.run_dir, usec);
  if (r == ROOT_SETUP_EXIT_DONE)
    log_line (
        6, "/ is %s (read-only), /etc and /var writable, physical root at /sysroot; took %lld us",
        karg, usec);
  else if (r == ROOT_SETUP_EXIT_FAILED)
    reboot_if_counting ();
  free (karg);
  return r;
}

#include "config.h"

#include "kernel.h"
#include "errors.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

void
kernel_info_free (KernelInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->version);
  g_free (info->kernel_path);
  g_free (info->initramfs_path);
  g_free (info);
}

/* Size of a regular file, or FALSE if @path is missing, not a regular file,
 * or reached through a symlink anywhere on the way: one could point out of
 * the tree (a usr/ -> /usr link made the host's kernel the image's). With
 * no symlink on the path, what is checksummed here is what gets copied. */
static gboolean
regular_file_size (int dfd, const char *path, guint64 *ret_size)
{
  struct stat st;
  autofd fd = fs_open_beneath (dfd, path, O_PATH);
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return FALSE;
  *ret_size = st.st_size;
  return TRUE;
}

/* The names in @path below @dfd, or none if it does not exist or is
 * reached through a symlink (see regular_file_size()). */
static gboolean
list_dir_optional (int dfd, const char *path, GPtrArray **ret_names, GError **error)
{
  autofd fd = fs_open_beneath (dfd, path, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    {
      if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
        return throw_errno (error, "opening directory %s", path);
      *ret_names = g_ptr_array_new_with_free_func (g_free);
      return TRUE;
    }
  return fs_list_dir (fd, path, ret_names, error);
}

static void
add_candidate (GPtrArray *found, const char *kver, char *kernel_path, guint64 kernel_size,
               char *initramfs_path, guint64 initramfs_size)
{
  for (guint i = 0; i < found->len; i++)
    if (strcmp (((KernelInfo *)found->pdata[i])->version, kver) == 0)
      {
        g_free (kernel_path);
        g_free (initramfs_path);
        return;
      }
  KernelInfo *info = g_new0 (KernelInfo, 1);
  info->version = g_strdup (kver);
  info->kernel_path = kernel_path;
  info->kernel_size = kernel_size;
  info->initramfs_path = initramfs_path;
  info->initramfs_size = initramfs_size;
  g_ptr_array_add (found, info);
}

gboolean
kernel_find (int tree_dfd, KernelInfo **ret_info, GError **error)
{
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func ((GDestroyNotify)kernel_info_free);
  g_autoptr (GPtrArray) modules = NULL;
  if (!list_dir_optional (tree_dfd, "usr/lib/modules", &modules, error))
    return FALSE;
  for (guint i = 0; i < modules->len; i++)
    {
      const char *kver = modules->pdata[i];
      if (kver[0] == '.')
        continue;
      g_autofree char *kpath = g_strdup_printf ("usr/lib/modules/%s/vmlinuz", kver);
      g_autofree char *ipath = g_strdup_printf ("usr/lib/modules/%s/initramfs.img", kver);
      guint64 ksize, isize = 0;
      if (!regular_file_size (tree_dfd, kpath, &ksize))
        continue;
      gboolean has_initramfs = regular_file_size (tree_dfd, ipath, &isize);
      add_candidate (found, kver, g_steal_pointer (&kpath), ksize,
                     has_initramfs ? g_steal_pointer (&ipath) : NULL, isize);
    }

  g_autoptr (GPtrArray) boot = NULL;
  if (!list_dir_optional (tree_dfd, "boot", &boot, error))
    return FALSE;
  for (guint i = 0; i < boot->len; i++)
    {
      const char *name = boot->pdata[i];
      if (!g_str_has_prefix (name, "vmlinuz-") || name[strlen ("vmlinuz-")] == '\0')
        continue;
      const char *kver = name + strlen ("vmlinuz-");
      g_autofree char *kpath = g_strdup_printf ("boot/%s", name);
      guint64 ksize, isize = 0;
      if (!regular_file_size (tree_dfd, kpath, &ksize))
        continue;
      g_autofree char *ipath = g_strdup_printf ("boot/initrd.img-%s", kver);
      gboolean has_initramfs = regular_file_size (tree_dfd, ipath, &isize);
      if (!has_initramfs)
        {
          g_free (ipath);
          ipath = g_strdup_printf ("boot/initramfs-%s.img", kver);
          has_initramfs = regular_file_size (tree_dfd, ipath, &isize);
        }
      add_candidate (found, kver, g_steal_pointer (&kpath), ksize,
                     has_initramfs ? g_steal_pointer (&ipath) : NULL, isize);
    }

  if (found->len == 0)
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "image has no kernel: expected usr/lib/modules/<kver>/vmlinuz or "
                        "boot/vmlinuz-<kver> (a regular file, not reached through a symlink)");
  if (found->len > 1)
    {
      g_autoptr (GString) list = g_string_new (NULL);
      for (guint i = 0; i < found->len; i++)
        {
          KernelInfo *k = found->pdata[i];
          g_string_append_printf (list, "%s%s", i ? ", " : "", k->kernel_path);
        }
      return throw_error (error, STAGEHAND_ERROR_INVALID,
                          "image has %u kernels (%s): an image must have exactly one", found->len,
                          list->str);
    }
  /* The version goes into the origin file (UTF-8 text, a value per line)
   * and the status output: a control character or invalid UTF-8 in it would
   * make the deployment's own origin unreadable, and every later command
   * with it. */
  const char *kver = ((KernelInfo *)found->pdata[0])->version;
  for (const guchar *p = (const guchar *)kver; *p; p++)
    if (g_ascii_iscntrl (*p))
      return throw_error (error, STAGEHAND_ERROR_INVALID,
                          "image kernel version (the name of its directory or file) contains "
                          "control character 0x%02x",
                          *p);
  if (!g_utf8_validate (kver, -1, NULL))
    return throw_error (error, STAGEHAND_ERROR_INVALID,
                        "image kernel version (the name of its directory or file) is not valid "
                        "UTF-8");
  *ret_info = g_ptr_array_steal_index (found, 0);
  return TRUE;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_MD_CTX, EVP_MD_CTX_free)

/* The SHA-256 of one file's bytes, as 64 hex digits. OpenSSL's, not
 * GChecksum's: it uses the CPU's SHA extensions where there are some, and
 * a first deployment hashes its 30 MB of kernel and initramfs here. On
 * the benchmark's 2-core VM: 26 ms against GChecksum's 88 ms, a tenth of
 * the whole stage (README, "Performance"). */
static gboolean
checksum_file (int dfd, const char *path, char **ret_hex, GError **error)
{
  autofd fd = fs_open_beneath (dfd, path, O_RDONLY | O_NOCTTY);
  if (fd < 0)
    return throw_errno (error, "opening %s", path);
  g_autoptr (EVP_MD_CTX) ctx = EVP_MD_CTX_new ();
  if (ctx == NULL || EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) != 1)
    return throw_error (error, STAGEHAND_ERROR_FAILED, "hashing %s: cannot set up SHA-256", path);
  g_autofree guint8 *buf = g_malloc (1 << 20);
  for (;;)
    {
      ssize_t n = read (fd, buf, 1 << 20);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return throw_errno (error, "reading %s", path);
      if (n == 0)
        break;
      if (EVP_DigestUpdate (ctx, buf, n) != 1)
        return throw_error (error, STAGEHAND_ERROR_FAILED, "hashing %s: SHA-256 failed", path);
    }
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex (ctx, digest, &len) != 1 || len != 32)
    return throw_error (error, STAGEHAND_ERROR_FAILED, "hashing %s: SHA-256 failed", path);
  char *hex = g_malloc (2 * len + 1);
  for (unsigned int i = 0; i < len; i++)
    g_snprintf (hex + 2 * i, 3, "%02x", digest[i]);
  *ret_hex = hex;
  return TRUE;
}

gboolean
kernel_checksum (int tree_dfd, const KernelInfo *info, char **ret_bootcsum, GError **error)
{
  /* Framed: a hash of each file under its name in the kernel directory,
   * not one hash over the bytes of both. Over the concatenation, a kernel
   * K1 with initramfs I1 and a kernel K1+X with initramfs I1 minus its
   * first bytes X hash the same, share a directory, and one boots the
   * other's kernel (issue 14). The text is what `sha256sum vmlinuz
   * initramfs.img` prints in that directory. */
  g_autoptr (GString) listing = g_string_new (NULL);
  g_autofree char *kernel_hex = NULL, *initramfs_hex = NULL;
  if (!checksum_file (tree_dfd, info->kernel_path, &kernel_hex, error))
    return FALSE;
  g_string_append_printf (listing, "%s  " KERNEL_BOOT_FILE "\n", kernel_hex);
  if (info->initramfs_path != NULL)
    {
      if (!checksum_file (tree_dfd, info->initramfs_path, &initramfs_hex, error))
        return FALSE;
      g_string_append_printf (listing, "%s  " INITRAMFS_BOOT_FILE "\n", initramfs_hex);
    }
  *ret_bootcsum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, listing->str, listing->len);
  return TRUE;
}

/* What the tree writer and both import sources share: messages that name
 * an entry, whole-buffer pread/pwrite, and the extended attributes of
 * symlinks.
 */
#include "config.h"

#include "import-private.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- extended attributes of symlinks ----------------------------------- */

/* Extended attributes of symlinks. fsetxattr() and friends refuse O_PATH fds
 * (EBADF), and lsetxattr() needs a path string, which we never glue together.
 * Linux 6.13 added setxattrat()/getxattrat()/listxattrat() taking a directory
 * fd, a name and AT_SYMLINK_NOFOLLOW: exactly what is needed. glibc 2.36 has
 * no wrappers, so call them by number (identical on every architecture except
 * those with their own offsets). On older kernels (ENOSYS) symlink xattrs are
 * skipped: only trusted.* and security.* can exist on symlinks at all (the
 * kernel refuses user.* there), and the caller's kernel cannot set them through
 * a held fd. */
#if !defined(__NR_setxattrat) && !defined(__alpha__) && !defined(__mips__) && !defined(__ia64__)
#define __NR_setxattrat 463
#define __NR_getxattrat 464
#define __NR_listxattrat 465
#endif

struct xattrat_args
{
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

ssize_t
import_symlink_setxattr_at (int dfd, const char *name, const char *key, const void *value,
                            size_t len)
{
#ifdef __NR_setxattrat
  struct xattrat_args args = { .value = (uintptr_t)value, .size = len, .flags = 0 };
  return syscall (__NR_setxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof args);
#else
  errno = ENOSYS;
  return -1;
#endif
}

ssize_t
import_symlink_getxattr_at (int dfd, const char *name, const char *key, void *value, size_t len)
{
#ifdef __NR_getxattrat
  struct xattrat_args args = { .value = (uintptr_t)value, .size = len, .flags = 0 };
  return syscall (__NR_getxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof args);
#else
  errno = ENOSYS;
  return -1;
#endif
}

ssize_t
import_symlink_listxattr_at (int dfd, const char *name, char *list, size_t len)
{
#ifdef __NR_listxattrat
  return syscall (__NR_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, list, len);
#else
  errno = ENOSYS;
  return -1;
#endif
}

ssize_t
import_listxattr (int fd, int dfd, const char *name, char *list, size_t len)
{
  return fd >= 0 ? flistxattr (fd, list, len) : import_symlink_listxattr_at (dfd, name, list, len);
}

ssize_t
import_getxattr (int fd, int dfd, const char *name, const char *key, void *value, size_t len)
{
  return fd >= 0 ? fgetxattr (fd, key, value, len)
                 : import_symlink_getxattr_at (dfd, name, key, value, len);
}

/* ---- messages ---------------------------------------------------------- */

/* Past this many bytes a name in a message keeps its start and its end
 * and loses its middle ("a/b/.../y/z"): a path 10,000 directories deep
 * made a 40 KB one-line error (issue 14). */
#define MESSAGE_NAME_MAX 240
#define MESSAGE_NAME_HEAD 80

/* Drops the middle of @s past MESSAGE_NAME_MAX bytes, at character
 * boundaries (@s is valid UTF-8). */
static void
elide_middle (GString *s)
{
  if (s->len <= MESSAGE_NAME_MAX)
    return;
  const char *head_end = g_utf8_find_prev_char (s->str, s->str + MESSAGE_NAME_HEAD + 1);
  const char *tail = s->str + s->len - (MESSAGE_NAME_MAX - MESSAGE_NAME_HEAD - 3);
  while ((*tail & 0xc0) == 0x80)
    tail++;
  gsize head_len = head_end != NULL ? (gsize)(head_end - s->str) : MESSAGE_NAME_HEAD;
  gsize tail_pos = tail - s->str;
  g_string_erase (s, head_len, tail_pos - head_len);
  g_string_insert (s, head_len, "...");
}

/* An entry name fit for a message: printable UTF-8 as is, `"` and `\`
 * escaped, every other byte as \xNN, and its middle elided past
 * MESSAGE_NAME_MAX bytes. Names are bytes, not text. */
char *
import_escape_name (const char *name)
{
  GString *s = g_string_new (NULL);
  const char *p = name;
  while (*p != '\0')
    {
      gunichar c = g_utf8_get_char_validated (p, -1);
      if (c == (gunichar)-1 || c == (gunichar)-2 || !g_unichar_isprint (c))
        {
          g_string_append_printf (s, "\\x%02x", (guchar)*p);
          p++;
          continue;
        }
      const char *next = g_utf8_next_char (p);
      if (c == '"' || c == '\\')
        g_string_append_c (s, '\\');
      g_string_append_len (s, p, next - p);
      p = next;
    }
  elide_middle (s);
  return g_string_free (s, FALSE);
}

/* Refuses an entry: STAGEHAND_ERROR_INVALID, `image entry "<path>": <reason>`. */
gboolean
import_throw_entry (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *reason = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *escaped = import_escape_name (path);
  return throw_error (error, STAGEHAND_ERROR_INVALID, "image entry \"%s\": %s", escaped, reason);
}

/* A system call failed while writing an entry: `image entry "<path>": <what>: <strerror>`. */
gboolean
import_throw_entry_errno (GError **error, const char *path, const char *what)
{
  int errsv = errno;
  g_autofree char *escaped = import_escape_name (path);
  return throw_errno_value (error, errsv, "image entry \"%s\": %s", escaped, what);
}

/* Adds `image entry "<path>": ` in front of an error from a content source. */
gboolean
import_prefix_entry_error (GError **error, const char *path)
{
  g_autofree char *escaped = import_escape_name (path);
  return prefix_error (error, "image entry \"%s\": ", escaped);
}

/* ---- whole-buffer I/O -------------------------------------------------- */

gboolean
import_pwrite_all (int fd, const guint8 *buf, size_t len, off_t offset)
{
  while (len > 0)
    {
      ssize_t n = pwrite (fd, buf, len, offset);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      buf += n;
      len -= n;
      offset += n;
    }
  return TRUE;
}

/* Sets errno on failure. */
gboolean
import_pread_all (int fd, guint8 *buf, size_t len, off_t offset)
{
  while (len > 0)
    {
      ssize_t n = pread (fd, buf, len, offset);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          errno = ENODATA; /* the file shrank while importing */
          return FALSE;
        }
      buf += n;
      len -= n;
      offset += n;
    }
  return TRUE;
}

/* ---- content hashes ---------------------------------------------------- */

ContentHash *
content_hash_new (void)
{
  ContentHash *h = g_new0 (ContentHash, 1);
  h->state = XXH3_createState ();
  g_assert (h->state != NULL);
  content_hash_reset (h);
  return h;
}

void
content_hash_free (ContentHash *h)
{
  XXH3_freeState (h->state);
  g_free (h);
}

void
content_hash_reset (ContentHash *h)
{
  XXH3_128bits_reset (h->state);
  h->fill = 0;
  h->zero_blocks = 0;
  h->size = 0;
}

static gboolean
all_zero (const guint8 *p, gsize len)
{
  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

static void
record_zero_run (ContentHash *h)
{
  if (h->zero_blocks == 0)
    return;
  guint64 n = GUINT64_TO_LE (h->zero_blocks);
  XXH3_128bits_update (h->state, "Z", 1);
  XXH3_128bits_update (h->state, &n, sizeof n);
  h->zero_blocks = 0;
}

static void
hash_block (ContentHash *h, const guint8 *block, gsize len)
{
  if (all_zero (block, len))
    {
      h->zero_blocks++;
      return;
    }
  record_zero_run (h);
  XXH3_128bits_update (h->state, "D", 1);
  XXH3_128bits_update (h->state, block, len);
}

void
content_hash_update (ContentHash *h, const void *data, gsize len)
{
  const guint8 *p = data;
  h->size += len;
  if (h->fill > 0)
    {
      gsize n = MIN (len, CONTENT_HASH_BLOCK - h->fill);
      memcpy (h->block + h->fill, p, n);
      h->fill += n;
      p += n;
      len -= n;
      if (h->fill < CONTENT_HASH_BLOCK)
        return;
      hash_block (h, h->block, CONTENT_HASH_BLOCK);
      h->fill = 0;
    }
  for (; len >= CONTENT_HASH_BLOCK; p += CONTENT_HASH_BLOCK, len -= CONTENT_HASH_BLOCK)
    hash_block (h, p, CONTENT_HASH_BLOCK);
  memcpy (h->block, p, len);
  h->fill = len;
}

void
content_hash_zeros (ContentHash *h, guint64 len)
{
  if (h->fill > 0)
    {
      gsize n = MIN (len, (guint64)(CONTENT_HASH_BLOCK - h->fill));
      memset (h->block + h->fill, 0, n);
      h->fill += n;
      h->size += n;
      len -= n;
      if (h->fill < CONTENT_HASH_BLOCK)
        return;
      hash_block (h, h->block, CONTENT_HASH_BLOCK);
      h->fill = 0;
    }
  h->zero_blocks += len / CONTENT_HASH_BLOCK;
  h->size += len;
  h->fill = len % CONTENT_HASH_BLOCK;
  memset (h->block, 0, h->fill);
}

void
content_hash_digest (ContentHash *h, guint8 *ret_digest)
{
  if (h->fill > 0)
    hash_block (h, h->block, h->fill);
  h->fill = 0;
  record_zero_run (h);
  guint64 size = GUINT64_TO_LE (h->size);
  XXH3_128bits_update (h->state, "S", 1);
  XXH3_128bits_update (h->state, &size, sizeof size);
  import_hash_digest (h->state, ret_digest);
}

void
xattr_hash_update (XXH3_state_t *hash, const char *name, const void *value, gsize len)
{
  guint64 le_len = GUINT64_TO_LE ((guint64)len);
  XXH3_128bits_update (hash, name, strlen (name) + 1);
  XXH3_128bits_update (hash, &le_len, sizeof le_len);
  XXH3_128bits_update (hash, value, len);
}

void
import_hash_digest (XXH3_state_t *hash, guint8 *ret_digest)
{
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash (&canonical, XXH3_128bits_digest (hash));
  G_STATIC_ASSERT (sizeof canonical.digest == MANIFEST_HASH_LEN);
  memcpy (ret_digest, canonical.digest, MANIFEST_HASH_LEN);
}

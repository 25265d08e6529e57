#!/usr/bin/env python3
"""Helpers for the integration tests that shell does badly: walking trees
byte-exactly, reading JSON, ordering boot entries the way boot loaders do,
and writing hostile tar archives that GNU tar refuses to create.

    lib.py manifest [--links-within-tree] DIR
                                   one line per entry: every stat field that an
                                   import must keep, content hash, xattrs,
                                   hard-link group; names escaped byte for byte
    lib.py boot-snapshot DIR       path, type, mode, sha256 or link target
    lib.py json EXPR < JSON        prints the Python expression EXPR over `j`
    lib.py bls-order DIR           entry file names in Boot Loader Spec order
    lib.py vercmp A B              -1, 0 or 1 (UAPI.10 version comparison)
    lib.py hostile-tar OUT KIND    a tar archive with one hostile member
    lib.py sparse-file PATH        a 16 MiB file with two 4 KiB data extents

Nothing here depends on stagehand: it is the independent reference the
tests compare the binary against.
"""

import hashlib
import io
import json
import os
import re
import signal
import socket
import stat
import sys
import tarfile


def esc(b):
    """Bytes of a name as printable ASCII, reversibly: \\xNN for the rest."""
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x21 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def walk(root):
    """(relative bytes path, absolute bytes path) for root and everything
    below it, sorted by bytes, never following symlinks."""
    root = os.fsencode(root)
    found = [(b".", root)]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            found.append((os.path.relpath(full, root), full))
    found.sort()
    return found


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for n in sorted(names):
        v = os.getxattr(path, n, follow_symlinks=False)
        out.append("%s=%s" % (n, v.hex()))
    return out


def manifest(root, links_within_tree=False):
    """With links_within_tree, hard links count only inside ROOT: no nlink,
    and a file is in a link group only with other names below ROOT (a tree
    that shares unchanged files with another tree looks like its image)."""
    entries = walk(root)
    first_path = {}
    names = {}
    for rel, full in entries:
        st = os.lstat(full)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            first_path.setdefault((st.st_dev, st.st_ino), rel)
            names[(st.st_dev, st.st_ino)] = names.get((st.st_dev, st.st_ino), 0) + 1
    for rel, full in entries:
        st = os.lstat(full)
        fields = [
            esc(rel),
            "type=%s" % filetype(st.st_mode),
            "mode=%04o" % stat.S_IMODE(st.st_mode),
            "uid=%d" % st.st_uid,
            "gid=%d" % st.st_gid,
            "mtime_ns=%d" % st.st_mtime_ns,
        ]
        if stat.S_ISREG(st.st_mode):
            fields.append("size=%d" % st.st_size)
            fields.append("sha256=%s" % sha256_file(full))
            # Holes kept or not: allocation below the size means sparse.
            fields.append("sparse=%s" % ("yes" if st.st_blocks * 512 < st.st_size else "no"))
            if links_within_tree:
                if st.st_nlink > 1 and names[(st.st_dev, st.st_ino)] > 1:
                    fields.append("hardlink=%s" % esc(first_path[(st.st_dev, st.st_ino)]))
            elif st.st_nlink > 1:
                fields.append("hardlink=%s" % esc(first_path[(st.st_dev, st.st_ino)]))
                fields.append("nlink=%d" % st.st_nlink)
        elif stat.S_ISLNK(st.st_mode):
            fields.append("target=%s" % esc(os.readlink(full)))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            fields.append("rdev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        fields.extend("xattr:" + x for x in xattrs(full))
        print(" ".join(fields))


def filetype(mode):
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
    ):
        if test(mode):
            return name
    return "unknown"


def boot_snapshot(root):
    if not os.path.lexists(root):
        print("(missing)")
        return
    for rel, full in walk(root):
        st = os.lstat(full)
        line = "%s %s %04o" % (esc(rel), filetype(st.st_mode), stat.S_IMODE(st.st_mode))
        if stat.S_ISREG(st.st_mode):
            line += " " + sha256_file(full)
        elif stat.S_ISLNK(st.st_mode):
            line += " -> " + esc(os.readlink(full))
        print(line)


# --------------------------------------------------------------- BLS order


def version_char(c):
    return c.isascii() and (c.isalnum() or c in "~-^.")


def vercmp(a, b):
    """The UAPI.10 version comparison (what systemd-boot applies to
    `version` and to entry ids), written from the specification."""
    if not a or not b:
        return cmp((a is not None, a or ""), (b is not None, b or ""))
    i = j = 0
    while True:
        while i < len(a) and not version_char(a[i]):
            i += 1
        while j < len(b) and not version_char(b[j]):
            j += 1
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        if ca == "~" or cb == "~":
            if (ca == "~") != (cb == "~"):
                return -1 if ca == "~" else 1
            i += 1
            j += 1
            ca = a[i] if i < len(a) else ""
            cb = b[j] if j < len(b) else ""
        if ca == "" or cb == "":
            return cmp(a[i:], b[j:])
        # '-' (release), '^' (patch), '.' (point release), in this order:
        # at each, the string that has the separator here is the older.
        for sep in "-^.":
            if ca == sep or cb == sep:
                if (ca == sep) != (cb == sep):
                    return -1 if ca == sep else 1
                i += 1
                j += 1
                ca = a[i] if i < len(a) else ""
                cb = b[j] if j < len(b) else ""
        if ca.isdigit() or cb.isdigit():
            ii, jj = i, j
            while ii < len(a) and a[ii].isdigit():
                ii += 1
            while jj < len(b) and b[jj].isdigit():
                jj += 1
            if (ii > i) != (jj > j):
                return 1 if ii > i else -1
            na, nb = a[i:ii].lstrip("0"), b[j:jj].lstrip("0")
            r = cmp(len(na), len(nb)) or cmp(na, nb)
            if r:
                return r
        else:
            ii, jj = i, j
            while ii < len(a) and a[ii].isascii() and a[ii].isalpha():
                ii += 1
            while jj < len(b) and b[jj].isascii() and b[jj].isalpha():
                jj += 1
            sa, sb = a[i:ii], b[j:jj]
            n = min(len(sa), len(sb))
            r = cmp(sa[:n], sb[:n]) or cmp(len(sa), len(sb))
            if r:
                return r
        i, j = ii, jj


def cmp(x, y):
    return (x > y) - (x < y)


def parse_entry(path):
    e = {"id": os.path.basename(path)}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(" ")
            value = value.strip()
            if key in ("sort-key", "machine-id", "version"):
                e.setdefault(key, value)
    return e


def bls_counter(name):
    """systemd-boot's boot counter of an entry file name: (id, left, done),
    id being the name without "+LEFT[-DONE]"; left is None without one."""
    stem, suffix = (name[:-5], name[-5:]) if name.lower().endswith(".conf") else (name, "")
    plus = stem.rfind("+")
    if plus < 0:
        return name, None, 0
    left, sep, done = stem[plus + 1:].partition("-")
    if not (left.isascii() and left.isdigit()) or (sep and not (done.isascii() and done.isdigit())):
        return name, None, 0
    if int(left) > 2**31 - 1 or (done and int(done) > 2**31 - 1):
        return name, None, 0
    return stem[:plus] + suffix, int(left), int(done or 0)


def bls_compare(a, b):
    """systemd-boot's order: entries with no tries left last; entries with
    a sort-key first; then sort-key, machine-id, version (newest first);
    then the id without the boot counter (newest first); then more tries
    left, fewer tries done."""
    ida, lefta, donea = bls_counter(a["id"])
    idb, leftb, doneb = bls_counter(b["id"])
    r = cmp(lefta == 0, leftb == 0)
    if r:
        return r
    ska, skb = a.get("sort-key"), b.get("sort-key")
    if (ska is None) != (skb is None):
        return 1 if ska is None else -1
    if ska is not None:
        r = cmp(ska, skb)
        if r:
            return r
        r = cmp((a.get("machine-id") is not None, a.get("machine-id") or ""),
                (b.get("machine-id") is not None, b.get("machine-id") or ""))
        if r:
            return r
        r = -vercmp(a.get("version"), b.get("version"))
        if r:
            return r
    r = -vercmp(ida[:-5] if ida.endswith(".conf") else ida, idb[:-5] if idb.endswith(".conf") else idb)
    if r or lefta is None or leftb is None:
        return r
    return -cmp(lefta, leftb) or cmp(donea, doneb)


def bls_order(directory):
    import functools

    names = sorted(n for n in os.listdir(directory) if n.endswith(".conf") and not n.startswith("."))
    entries = [parse_entry(os.path.join(directory, n)) for n in names]
    entries.sort(key=functools.cmp_to_key(bls_compare))
    for e in entries:
        print(e["id"])


# ------------------------------------------------------------ hostile tars


def add(t, name, type_=tarfile.REGTYPE, data=b"", linkname="", mode=0o644, devmajor=0, devminor=0):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.mtime = 1700000000
    ti.linkname = linkname
    ti.devmajor, ti.devminor = devmajor, devminor
    if type_ == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)


def base_image(t):
    """A valid image, so that the hostile member is the only problem."""
    for d in ("./", "./usr/", "./usr/lib/", "./usr/lib/modules/", "./usr/lib/modules/6.1.0/", "./etc/"):
        add(t, d, tarfile.DIRTYPE, mode=0o755)
    add(t, "./usr/lib/os-release", data=b'ID=demo\nNAME="Test OS"\nVERSION_ID=1.0\nPRETTY_NAME="Test OS 1.0"\n')
    add(t, "./usr/lib/modules/6.1.0/vmlinuz", data=b"vmlinuz 6.1.0\n")
    add(t, "./usr/lib/modules/6.1.0/initramfs.img", data=b"initramfs 6.1.0\n")


def hostile_tar(out, kind, escape_target):
    """KIND names the hostile member; ESCAPE_TARGET is an absolute path
    outside the sysroot that a successful escape would create or reach."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
        base_image(t)
        rel_escape = os.path.relpath(escape_target, "/")
        if kind == "dotdot":
            add(t, "./etc/../../../../../../../../" + rel_escape, data=b"escaped\n")
        elif kind == "dotdot-leading":
            add(t, "../escaped-file", data=b"escaped\n")
        elif kind == "absolute":
            add(t, escape_target, data=b"escaped\n")
        elif kind == "symlink-then-path":
            add(t, "./etc/escape", tarfile.SYMTYPE, linkname=os.path.dirname(escape_target))
            add(t, "./etc/escape/" + os.path.basename(escape_target), data=b"escaped\n")
        elif kind == "symlink-inside-then-path":
            # Even a link that stays inside the tree is not a path to write through.
            add(t, "./etc/alias", tarfile.SYMTYPE, linkname="../usr")
            add(t, "./etc/alias/through-link", data=b"through\n")
        elif kind == "symlink-then-dir":
            add(t, "./etc/escape", tarfile.SYMTYPE, linkname=os.path.dirname(escape_target))
            add(t, "./etc/escape/" + os.path.basename(escape_target), tarfile.DIRTYPE, mode=0o755)
        elif kind == "hardlink-through-symlink":
            add(t, "./etc/escape", tarfile.SYMTYPE, linkname=os.path.dirname(escape_target))
            add(t, "./etc/passwd-copy", tarfile.LNKTYPE, linkname="etc/escape/" + os.path.basename(escape_target))
        elif kind == "hardlink-outside":
            add(t, "./etc/passwd-copy", tarfile.LNKTYPE, linkname=escape_target)
        elif kind == "hardlink-dotdot":
            add(t, "./etc/passwd-copy", tarfile.LNKTYPE, linkname="../../../../../../" + rel_escape)
        elif kind == "chardev":
            add(t, "./dev-null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        elif kind == "blockdev":
            add(t, "./sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0)
        else:
            raise SystemExit("hostile-tar: unknown kind %s" % kind)


def sparse_file(path):
    with open(path, "wb") as f:
        f.truncate(16 << 20)
        f.seek(1 << 20)
        f.write(b"A" * 4096)
        f.seek(12 << 20)
        f.write(b"B" * 4096)


def durable_before_commit(trace_path, boot, sysroot):
    """Reads an `strace -f -y` trace of a finalize (openat, mkdirat,
    renameat, renameat2, symlinkat, fsync, fdatasync, syncfs) and prints one
    line per violation of the durability order: before the commit point
    (the rename over loader, the RENAME_EXCHANGE of loader/entries, or the
    first entry moved into loader/entries by the fallback), every file
    written into the new entry set was f(data)synced, every directory of
    the set was fsynced after the last name was added to it, and both the
    boot filesystem and the sysroot were syncfs'ed after the last of those.
    A call strace skipped (INJECTED) does not count."""
    line_re = re.compile(r"^\d+\s+([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+)")
    fd_re = re.compile(r"(-?\d+|AT_FDCWD)<([^>]*)>")
    calls = []
    for line in open(trace_path):
        m = line_re.match(line)
        if not m or "INJECTED" in line or int(m.group(3)) < 0:
            continue
        name, args = m.group(1), m.group(2)
        fds = fd_re.findall(args)
        strs = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        ret_fd = re.search(r"=\s+\d+<([^>]*)>\s*$", line.strip())
        calls.append((name, [f[1] for f in fds], strs, args, ret_fd.group(1) if ret_fd else None))

    entries_new = os.path.join(boot, "loader", "entries.new")
    commit = None
    top = None
    for i, (name, dirs, strs, args, _) in enumerate(calls):
        if name == "renameat" and len(dirs) == 2 and dirs[1] == boot and strs[1:] == ["loader"]:
            commit = i
            # the link renamed over loader names the new loader.M
            for j in range(i - 1, -1, -1):
                if calls[j][0] == "symlinkat":
                    top = os.path.join(boot, calls[j][2][0])
                    break
            break
        if name == "renameat2" and "RENAME_EXCHANGE" in args:
            commit, top = i, entries_new
            break
        if (name == "renameat" and len(dirs) == 2 and dirs[0] == entries_new
                and dirs[1] == os.path.join(boot, "loader", "entries")):
            commit, top = i, entries_new
            break
    if commit is None or top is None:
        print("no commit point found in the trace")
        return
    before = calls[:commit]
    under = lambda p: p == top or p.startswith(top + "/")

    synced = set()
    last_sync = {}
    for i, (name, dirs, strs, args, _) in enumerate(before):
        if name in ("fsync", "fdatasync") and dirs:
            synced.add(dirs[0])
            last_sync[dirs[0]] = i
    # files created in the new set, and each directory's last change
    changed = {top: -1}
    last_write = -1
    for i, (name, dirs, strs, args, ret) in enumerate(before):
        if name == "openat" and "O_CREAT" in args and ret and under(ret):
            last_write = max(last_write, i)
            if ret not in synced:
                print("written, never synced before the commit point: " + ret)
        if name == "mkdirat" and dirs:
            path = os.path.normpath(os.path.join(dirs[0], strs[0]))
            if under(path):
                changed[path] = max(changed.get(path, -1), -1)
                parent = os.path.dirname(path)
                changed[parent] = i
                last_write = max(last_write, i)
        if name == "renameat" and len(dirs) == 2:
            dest = os.path.normpath(os.path.join(dirs[1], strs[1]))
            if under(dest):
                changed[os.path.dirname(dest)] = i
                last_write = max(last_write, i)
    # (The boot directory itself, where loader.M appears, is covered by the
    # syncfs of the boot filesystem.)
    for d, i in sorted(changed.items()):
        if under(d) and last_sync.get(d, -2) <= i:
            print("directory not fsynced after its last change before the commit point: " + d)
    for fs, what in ((boot, "the boot filesystem"), (sysroot, "the sysroot")):
        if not any(n == "syncfs" and ds and ds[0] == fs and i > last_write
                   for i, (n, ds, _, _, _) in enumerate(before)):
            print("no syncfs of %s after the new set was written and before the commit point" % what)


def notify_listen(sock_path, log_path):
    """An sd_notify receiver: binds a datagram socket at sock_path, writes
    "LISTENING" to log_path, then appends every message received (its
    newlines as spaces), one a line, until killed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    with open(log_path, "a") as log:
        log.write("LISTENING\n")
        log.flush()
        while True:
            msg = s.recv(65536)
            log.write(msg.decode("utf-8", "replace").replace("\n", " ") + "\n")
            log.flush()


def main():
    # `lib.py bls-order DIR | head -n1` is fine: die quietly as shell tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "manifest":
        if args[0] == "--links-within-tree":
            manifest(args[1], links_within_tree=True)
        else:
            manifest(args[0])
    elif cmd == "boot-snapshot":
        boot_snapshot(args[0])
    elif cmd == "json":
        j = json.load(sys.stdin)
        v = eval(args[0], {"j": j, "len": len, "sorted": sorted, "json": json})
        print(v if isinstance(v, str) else json.dumps(v))
    elif cmd == "bls-order":
        bls_order(args[0])
    elif cmd == "vercmp":
        print(vercmp(args[0], args[1]))
    elif cmd == "hostile-tar":
        hostile_tar(args[0], args[1], args[2])
    elif cmd == "sparse-file":
        sparse_file(args[0])
    elif cmd == "durable-before-commit":
        durable_before_commit(args[0], args[1], args[2])
    elif cmd == "notify-listen":
        notify_listen(args[0], args[1])
    else:
        raise SystemExit("lib.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs a command under the seccomp filter that cairn.service declares, the
way systemd would build it: every system call of @system-service allowed,
except @privileged and @resources; anything else fails with EPERM
(SystemCallErrorNumber=EPERM), no new privileges, and
MemoryDenyWriteExecute=true (no memory both writable and executable), and
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6.

    syscall-filter-exec.py [--print] COMMAND [ARGS...]

The groups are read from `systemd-analyze syscall-filter` on this machine,
so they are systemd's own lists. The filter is loaded through libseccomp
(ctypes), which is what systemd uses too. --print lists the allowed calls.
"""
import ctypes, errno, os, subprocess, sys

ALLOW = ["@system-service"]
DENY = ["@privileged", "@resources"]


def groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                         capture_output=True, text=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            g[cur] = []
        elif cur and line.strip() and not line.strip().startswith("#"):
            g[cur].append(line.strip())
    return g


def expand(g, name, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for m in g.get(name, []):
        if m.startswith("@"):
            if m not in seen:
                seen.add(m)
                out |= expand(g, m, seen)
        else:
            out.add(m)
    return out


def allowed():
    g = groups()
    a = set()
    for n in ALLOW:
        a |= expand(g, n)
    for n in DENY:
        a -= expand(g, n)
    return sorted(a)


def main():
    args = sys.argv[1:]
    names = allowed()
    if args and args[0] == "--print":
        print("\n".join(names))
        return
    if not args:
        sys.exit(__doc__)
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    SCMP_ACT_ALLOW = 0x7FFF0000
    SCMP_ACT_ERRNO = lambda e: 0x00050000 | (e & 0xFFFF)
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO(errno.EPERM))
    if not ctx:
        sys.exit("seccomp_init failed")
    for n in names:
        nr = lib.seccomp_syscall_resolve_name(n.encode())
        if nr < 0:  # not a system call on this architecture
            continue
        rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)
        if rc < 0:
            sys.exit("seccomp_rule_add(%s) failed: %d" % (n, rc))

    # MemoryDenyWriteExecute=true, as systemd builds it (a second filter):
    # no mapping both writable and executable, no mprotect adding PROT_EXEC,
    # no executable shared memory.
    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]
    SCMP_CMP_MASKED_EQ = 7
    PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
    mdwe = lib.seccomp_init(SCMP_ACT_ALLOW)
    for name, mask, value in [("mmap", PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC),
                              ("mprotect", PROT_EXEC, PROT_EXEC),
                              ("pkey_mprotect", PROT_EXEC, PROT_EXEC),
                              ("shmat", SHM_EXEC, SHM_EXEC)]:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue
        cmp = (Cmp * 1)(Cmp(2, SCMP_CMP_MASKED_EQ, mask, value))
        if lib.seccomp_rule_add_array(mdwe, SCMP_ACT_ERRNO(errno.EPERM), nr, 1, cmp) < 0:
            sys.exit("seccomp_rule_add_array(%s) failed" % name)
    # RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6: socket() of any other
    # family fails with EAFNOSUPPORT (also a seccomp filter in systemd).
    SCMP_CMP_EQ = 4
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    for family in range(0, 46):
        if family in (1, 2, 10):   # AF_UNIX, AF_INET, AF_INET6
            continue
        cmp = (Cmp * 1)(Cmp(0, SCMP_CMP_EQ, family, 0))
        if lib.seccomp_rule_add_array(mdwe, SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), nr, 1, cmp) < 0:
            sys.exit("seccomp_rule_add_array(socket %d) failed" % family)
    # This one first: the allow list does not allow loading more filters.
    if lib.seccomp_load(mdwe) < 0:
        sys.exit("seccomp_load (MemoryDenyWriteExecute) failed")
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        sys.exit("seccomp_load failed: %d" % rc)
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()

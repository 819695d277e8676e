"""Isolation for the sandbox runner: namespaces, a private read-only filesystem view, no network,
an unprivileged identity and resource limits. Runs inside `runner.py` (stdlib only).

`isolate(job)` runs in the runner before it forks the supervisor:

1. `unshare(NEWNET | NEWNS | NEWPID | NEWIPC | NEWUTS)` as root; as another user the same plus
   `NEWUSER`, with the user mapped to uid/gid 1000 inside. A new network namespace has only a
   loopback interface that is down: every connect (127.0.0.1 included) fails.
2. Mounts, private to the namespace: every mount becomes read-only; every top-level folder except
   the system ones (`KEEP_DIRS`) is covered by an empty read-only tmpfs, with the Python install
   (`expose`, read-only) bound back in; top-level files are covered with /dev/null; /tmp becomes a
   private tmpfs of `disk_mb` holding the program's folder `/tmp/work`; /proc, /sys, /dev/shm and
   /dev/mqueue are covered (no /proc/<pid>/mem, environ or fd of anybody).

If namespaces cannot be made, `isolate` raises IsolationError (the run fails closed) unless the
job allows running without isolation (`PRORL_SANDBOX_UNSAFE_NO_ISOLATION=1` in the harness):
then the program only gets a temporary folder, the privilege drop and the limits.

`drop_privileges` and `apply_limits` run in the supervisor (pid 1 of the new pid namespace): as
root it switches to the job's unprivileged uid/gid (random per run, so concurrent runs cannot
signal each other and RLIMIT_NPROC counts one run's processes), drops every capability, sets
no-new-privs (setuid binaries cannot regain root), marks itself non-dumpable (no ptrace or /proc
access to its memory) and asks to be killed when the runner dies.
"""

from __future__ import annotations

import os
import re
from typing import Any

WORKDIR = "/tmp/work"
SANDBOX_ID_IN_USERNS = 1000
KEEP_DIRS = frozenset({"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr"})

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_HIDDEN = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
_LIBC: Any = None


class IsolationError(Exception):
    """Namespaces or mounts could not be set up; the message says why and what to do."""


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return _LIBC


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _check(_libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data or None)), target)


# ----------------------------------------------------------------------------- runner side


def isolate(job: dict[str, Any]) -> dict[str, Any]:
    """Make the namespaces and mounts; the result tells the supervisor who to become and where
    the program's folder is. Raises IsolationError when isolation is impossible and required."""
    settings = job["isolation"]
    try:
        if settings.get("deny_namespaces"):
            raise OSError(1, "namespaces disabled by PRORL_SANDBOX_TEST_NO_NAMESPACES")
        userns = _unshare()
    except OSError as exc:
        if not settings.get("allow_unsafe"):
            raise IsolationError(
                f"cannot isolate the program ({exc.strerror}): no network/mount/pid namespace "
                "(needs root, or unprivileged user namespaces); refusing to run untrusted code. "
                "Set PRORL_SANDBOX_UNSAFE_NO_ISOLATION=1 to run it anyway without isolation."
            ) from None
        return _unisolated(settings)
    uid = SANDBOX_ID_IN_USERNS if userns else int(settings["uid"])
    try:
        _private_mounts(settings, uid)
    except OSError as exc:
        raise IsolationError(f"cannot set up the sandbox's private mounts: {exc}") from None
    return {"mode": "namespaces", "userns": userns, "uid": uid, "gid": uid, "workdir": WORKDIR}


def _unshare() -> bool:
    """Enter new namespaces; True when a user namespace was needed (not root)."""
    flags = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
    if os.geteuid() == 0:
        _check(_libc().unshare(flags), "unshare")
        return False
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc().unshare(flags | _CLONE_NEWUSER), "unshare (user namespace)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{SANDBOX_ID_IN_USERNS} {uid} 1"),
        ("gid_map", f"{SANDBOX_ID_IN_USERNS} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
    os.setresgid(SANDBOX_ID_IN_USERNS, SANDBOX_ID_IN_USERNS, SANDBOX_ID_IN_USERNS)
    os.setresuid(SANDBOX_ID_IN_USERNS, SANDBOX_ID_IN_USERNS, SANDBOX_ID_IN_USERNS)
    return True


def _unisolated(settings: dict[str, Any]) -> dict[str, Any]:
    """No namespaces (explicitly allowed): a temporary folder, removed by the runner afterwards."""
    import tempfile

    workdir = tempfile.mkdtemp(prefix="prorl-sandbox-", dir=settings.get("tmp_root"))
    root = os.geteuid() == 0
    uid = int(settings["uid"]) if root else os.geteuid()
    gid = uid if root else os.getegid()
    os.chown(workdir, uid, gid)
    info = {"mode": "none", "userns": False, "uid": uid, "gid": gid, "workdir": workdir}
    return {**info, "cleanup": workdir}


def _private_mounts(settings: dict[str, Any], uid: int) -> None:
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    exposed = _outermost([os.path.realpath(p) for p in settings.get("expose", [])])
    handles = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in exposed if os.path.isdir(p)}
    try:
        _all_read_only(visible=[f"/{d}" for d in KEEP_DIRS] + list(handles))
        for name in sorted(os.listdir("/")):
            path = f"/{name}"
            if name in ("proc", "tmp") or os.path.islink(path):
                continue
            if not os.path.isdir(path):
                _cover_file(path)
            elif name not in KEEP_DIRS:
                _cover_dir(path, _under(handles, path), "size=64k,mode=755", writable=False)
        disk = f"size={int(settings['disk_mb'])}m,mode=755"
        _cover_dir("/tmp", _under(handles, "/tmp"), disk, writable=True)
        os.mkdir(WORKDIR, 0o700)
        os.chown(WORKDIR, uid, uid)
        for path in ("/dev/shm", "/dev/mqueue"):
            if os.path.isdir(path) and not os.path.islink(path):
                _mount("tmpfs", path, "tmpfs", _HIDDEN, "size=4k,mode=755")
        _mount("tmpfs", "/proc", "tmpfs", _HIDDEN, "size=4k,mode=555")  # last: binds used it
    finally:
        for fd in handles.values():
            os.close(fd)


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside another path of the list, and paths already visible (system folders)."""
    keep = []
    for path in sorted(set(paths)):
        top = path.split("/")[1] if path.count("/") >= 1 else ""
        if path == "/" or top in KEEP_DIRS or top in ("proc", "sys"):
            continue
        if not any(path.startswith(k + "/") for k in keep):
            keep.append(path)
    return keep


def _under(handles: dict[str, int], folder: str) -> dict[str, int]:
    return {p: fd for p, fd in handles.items() if p.startswith(folder + "/")}


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            raw = line.split(" ")[4]  # spaces, tabs, newlines and backslashes are \ooo escapes
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), raw))
    return points


def _remount_read_only(path: str) -> None:
    locked = os.statvfs(path).f_flag & (_MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | locked)


def _all_read_only(visible: list[str]) -> None:
    """Remount every mount read-only; a failure matters only where it stays visible."""
    for point in _mount_points():
        try:
            _remount_read_only(point)
        except OSError as exc:
            seen = [v for v in visible if point == v or point.startswith(v + "/")]
            if point == "/" or seen:
                raise OSError(exc.errno, f"read-only remount of {point}: {exc.strerror}") from None


def _cover_file(path: str) -> None:
    _mount("/dev/null", path, None, _MS_BIND)
    _remount_read_only(path)


def _cover_dir(path: str, keep: dict[str, int], options: str, writable: bool) -> None:
    """An empty tmpfs over `path`, with the folders in `keep` bound back in read-only."""
    _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
    for inner, fd in keep.items():
        os.makedirs(inner, 0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", inner, None, _MS_BIND | _MS_REC)
        _remount_read_only(inner)
    if not writable:
        _mount(None, path, None, _MS_REMOUNT | _HIDDEN, options)


# ----------------------------------------------------------------------------- supervisor side


def drop_privileges(isolation: dict[str, Any]) -> None:
    """Become the sandbox user with no capabilities; raise if root could be regained."""
    uid, gid = int(isolation["uid"]), int(isolation["gid"])
    libc = _libc()  # load ctypes while the Python install is surely readable
    if os.geteuid() == 0 and not isolation["userns"]:
        os.setgroups([])
    if (os.getuid(), os.getgid()) != (uid, gid):
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _drop_capabilities()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    _check(libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0), "pdeathsig")
    try:
        os.setuid(0)
    except OSError:  # EPERM; EINVAL in a user namespace, where uid 0 is not even mapped
        return
    raise RuntimeError("the sandbox could regain uid 0; refusing to run")


def _drop_capabilities() -> None:
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()  # two (effective, permitted, inheritable) sets, all empty
    _check(_libc().capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def apply_limits(limits: dict[str, Any]) -> None:
    """Supervisor-wide limits (inherited by workers): memory, processes, descriptors, no cores."""
    import resource

    memory = int(limits["memory_mb"]) << 20
    procs = int(limits["max_procs"]) + 1  # + the supervisor itself
    for what, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_NPROC, procs),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(what, (value, value))


def apply_worker_limits(limits: dict[str, Any]) -> None:
    """Per-worker limits (each worker is a fresh fork): CPU seconds and the largest file."""
    import resource

    cpu = max(1, int(limits["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    size = int(limits["file_size_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

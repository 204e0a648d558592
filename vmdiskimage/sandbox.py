# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""A Landlock filesystem sandbox for the qemu-img child process.

qemu-img opens whatever files a disk image names (backing files, qcow2 data files,
vmdk extents). :mod:`vmdiskimage.formats` refuses such images from their bytes and
from ``qemu-img info``; this is the second wall, for whatever a check misses: the
child may read the system directories it runs from, its one source file and its one
target, and nothing else, so the pull secret and the CA file cannot end up in a disk;
where the kernel can (Landlock ABI 4), it may not open TCP connections either.

Landlock is what works in the populator pod: it needs no capability, no user or
mount namespace and no writable root filesystem, only Linux 5.13 or later with
Landlock enabled (``landlock`` in the kernel's LSM list) and a seccomp profile that
allows its three system calls (the runtime default profiles of containerd and Docker
do). Where it is missing the checks stand alone and :func:`restrict_child` says so.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from .libc import last_error, libc

log = logging.getLogger(__name__)

# System call numbers: the same in the generic table (arm64, riscv64) and on x86_64.
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_SUPPORTED_MACHINES = ("x86_64", "aarch64", "arm64", "riscv64")
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
_ABI_1_ALL = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_NET_ALL = (1 << 0) | (1 << 1)  # BIND_TCP, CONNECT_TCP (ABI 4)
#: Rights that may be granted on a file (the others apply to directories only).
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

#: What qemu-img needs to start: its binary, the dynamic loader and libraries, and
#: the sysfs attributes of a block device. Nothing here holds a credential.
SYSTEM_READ_PATHS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ld.so.cache", "/sys")


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _syscall(*args: object) -> int:
    result = libc().syscall(*args)
    if result < 0:
        raise last_error()
    return int(result)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    if platform.system() != "Linux" or platform.machine() not in _SUPPORTED_MACHINES:
        return 0
    try:
        return _syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except OSError:  # ENOSYS: too old; EOPNOTSUPP: disabled; EPERM: seccomp
        return 0


def _handled(abi: int) -> int:
    rights = _ABI_1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _PathBeneath(rights, fd)
        _syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)


class Ruleset:
    """A Landlock ruleset built in the parent, enforced in a child by :meth:`enforce`."""

    def __init__(
        self, read: Iterable[str | Path], write: Iterable[str | Path], abi: int | None = None
    ) -> None:
        self.abi = abi_version() if abi is None else abi
        self.fd = -1
        if not self.abi:
            return
        handled = _handled(self.abi)
        # From ABI 4 TCP is handled too, with no rule: qemu-img connects nowhere (an
        # extent or data file named nbd://... would otherwise be a network client).
        attr = (ctypes.c_uint64 * 2)(handled, _NET_ALL if self.abi >= 4 else 0)
        size = ctypes.sizeof(attr) if self.abi >= 4 else 8
        self.fd = _syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
        try:
            for path in SYSTEM_READ_PATHS:
                _add_rule(self.fd, path, EXECUTE | READ_FILE | READ_DIR)
            _add_rule(self.fd, "/dev/null", READ_FILE | WRITE_FILE)
            for path in read:
                _add_rule(self.fd, str(path), READ_FILE)
            for path in write:
                _add_rule(self.fd, str(path), handled & _FILE_RIGHTS & ~EXECUTE)
        except BaseException:
            self.close()
            raise

    @property
    def active(self) -> bool:
        return self.fd >= 0

    def enforce(self) -> None:
        """In the child, between fork and exec: no new privileges, then the ruleset."""
        c = libc()  # loaded by the parent already: creating the ruleset called it
        if c.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(126)
        if c.syscall(_SYS_RESTRICT_SELF, self.fd, 0) != 0:
            os._exit(126)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Ruleset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_warned = False


def restrict_child(
    read: Iterable[str | Path], write: Iterable[str | Path]
) -> tuple[Ruleset, Callable[[], None] | None]:
    """A ruleset for a child that may read ``read`` and read and write ``write``.

    Returns the ruleset (close it after the child started) and the function to run in
    the child before exec, or None when the kernel has no Landlock.
    """
    global _warned
    try:
        ruleset = Ruleset(read, write)
    except OSError as exc:  # a kernel or seccomp profile that refuses part of it
        log.warning("the Landlock ruleset for qemu-img failed: %s", exc.strerror)
        ruleset = Ruleset((), (), abi=0)
    if ruleset.active:
        return ruleset, ruleset.enforce
    if not _warned:
        _warned = True
        log.warning(
            "the kernel offers no Landlock: qemu-img runs without a filesystem sandbox, "
            "behind the image checks alone"
        )
    return ruleset, None

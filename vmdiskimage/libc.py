# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""The C library, loaded once for every module that calls it through ctypes.

The writer (``memcmp``, ``fallocate``), the Landlock sandbox (``syscall``, ``prctl``)
and the populator's malloc settings (``mallopt``) share one handle. It is the process's
own symbol table (``dlopen(NULL)``): the C library Python runs on, glibc or musl,
without a search for it (``ctypes.util.find_library`` runs ``ldconfig``).
"""

from __future__ import annotations

import ctypes
import functools
import os


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library; calls through it save ``errno`` for :func:`last_error`."""
    return ctypes.CDLL(None, use_errno=True)


def last_error() -> OSError:
    """The error the last failed call through :func:`libc` left in ``errno``."""
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))

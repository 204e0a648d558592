"""vmdiskimage-populate keeps the buffers it frees: glibc serves buffers of a few MiB
from its heap instead of mapping each one on its own and unmapping it when freed (which
made every new buffer fault in fresh pages). How much freed memory the heap keeps is
not observable from here without allocating above the buffer."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

_HEAP = """
import sys
from vmdiskimage import populate
from vmdiskimage.streams import address
if sys.argv[1] == "kept":
    assert populate.keep_freed_memory()

def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            return low, high
    return 0, 0

buffer = bytearray(3 << 20)
start = address(memoryview(buffer))
low, high = heap()
print(low <= start < high)
"""


def _run(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _HEAP, mode], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_buffers_come_from_the_heap():
    assert _run("kept") == "True"


def test_without_it_a_buffer_is_mapped_on_its_own():
    """The default the setting changes (glibc): the same buffer is mmapped."""
    assert _run("default") == "False"

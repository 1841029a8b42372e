import ctypes
import errno
import os

import pytest

from exporter.sources.libc import syscall

# getpid, getcwd and close in the x86_64 and the generic (aarch64) tables
GETPID = {"x86_64": 39, "aarch64": 172}
GETCWD = {"x86_64": 79, "aarch64": 17}
CLOSE = {"x86_64": 3, "aarch64": 57}


def _number(table: dict[str, int]) -> int:
    machine = os.uname().machine
    if machine not in table:
        pytest.skip(f"no syscall number for {machine} in this test")
    return table[machine]


def test_returns_what_the_kernel_returns():
    assert syscall(_number(GETPID)) == os.getpid()


def test_pointers_are_passed_whole():
    """A buffer's address is past 2**32 here: passed as a C int, it would be cut and getcwd would fault."""
    buf = ctypes.create_string_buffer(4096)
    assert ctypes.addressof(buf) >= 1 << 32
    n = syscall(_number(GETCWD), ctypes.addressof(buf), len(buf))
    assert buf.raw[: n - 1].decode() == os.getcwd()  # n counts the terminating NUL


def test_failure_raises_the_kernels_errno():
    with pytest.raises(OSError) as e:
        syscall(_number(CLOSE), -1)
    assert e.value.errno == errno.EBADF and e.value.strerror == os.strerror(errno.EBADF)


# Frees 48 MiB of 1 KiB blocks (malloc's, not pymalloc's) while every 64th stays alive, so none of it is at
# the top of the heap, then prints the RSS before and after release_free_heap().
_FRAGMENTED = """
from exporter.sources.libc import release_free_heap

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

blocks = [bytes(1024) + bytes([i % 256]) for i in range(48 * 1024)]
kept = blocks[::64]
del blocks
before = rss()
print(release_free_heap(), before, rss())
"""


def test_release_free_heap_gives_freed_pages_back_to_the_kernel():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, check=True).stdout
    released, before, after = out.split()
    if released == "False":
        pytest.skip("this C library has no malloc_trim")
    assert int(before) - int(after) > 32 * 1024, out  # kB: most of the 48 MiB freed

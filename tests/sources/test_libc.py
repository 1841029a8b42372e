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

"""syscall(2) through the C library, for the system calls Python has no wrapper for (bpf, perf_event_open).

The arguments are passed as ``long``: on the 64-bit machines the callers
support, every syscall argument travels in a full register, so pointers
(``ctypes.addressof``) and small ints alike arrive as the kernel reads them.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable


@functools.cache
def _syscall() -> Callable[..., int]:
    fn = ctypes.CDLL(None, use_errno=True).syscall
    fn.restype = ctypes.c_long
    return fn


def syscall(number: int, *args: int) -> int:
    """``syscall(number, args...)``; a negative return raises OSError with the kernel's errno."""
    ret = _syscall()(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)

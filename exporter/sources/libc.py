"""syscall(2) through the C library, for the system calls Python has no wrapper for (bpf, perf_event_open);
and glibc's malloc_trim(3) and mallopt(3) (M_ARENA_MAX).

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


def release_free_heap() -> bool:
    """glibc's ``malloc_trim(0)``: the free pages inside the heap go back to the kernel.

    malloc returns freed memory to the kernel only from the top of the heap, so what start-up
    freed below live objects (the imports' temporaries, the first samples') stays resident: about
    1.2 MiB here, once. False where the C library has no malloc_trim (musl).
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(count: int) -> bool:
    """glibc's ``mallopt(M_ARENA_MAX, count)``: threads started after this share ``count`` malloc arenas.

    glibc gives a thread that finds the arenas in use one of its own (up to 8 per core), and each keeps
    what its thread freed: about 0.3 MiB of RSS here for the sampler's, the renderer's and libuv's threads.
    The threads malloc mostly under the GIL, so one arena costs them little waiting. False where the C
    library has no mallopt (musl) or refuses the value.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_ARENA_MAX, count))

"""syscall(2) through the C library, for the system calls Python has no wrapper for (bpf, perf_event_open);
the C library's own wrappers of statfs(2) (for its ``f_type``) and inotify(7); and glibc's malloc_trim(3)
and mallopt(3) (M_ARENA_MAX).

The arguments are passed as ``long``: on the 64-bit machines the callers
support, every syscall argument travels in a full register, so pointers
(``ctypes.addressof``) and small ints alike arrive as the kernel reads them.
"""

from __future__ import annotations

import ctypes
import functools
import os


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]  # the mask's high bits
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _error(what: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err)) if what is None else OSError(err, os.strerror(err), what)


def filesystem_type(path: str | os.PathLike[str]) -> int:
    """statfs(2)'s ``f_type`` of the filesystem holding ``path`` (linux/magic.h); OSError when it cannot be asked."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if _libc().statfs(os.fsencode(path), buf) != 0:
        raise _error(os.fspath(path))
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFFFFFF


def inotify_init1(flags: int) -> int:
    """A new inotify descriptor; OSError (EMFILE, ENOSYS, EPERM from a seccomp filter, ...) when refused."""
    fd = int(_libc().inotify_init1(flags))
    if fd < 0:
        raise _error()
    return fd


def inotify_add_watch(fd: int, path: bytes, mask: int) -> int:
    """The watch descriptor, or -1 when refused (ENOSPC at fs.inotify.max_user_watches, EACCES, ENOENT)."""
    return int(_libc().inotify_add_watch(fd, path, mask))


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Removes a watch; one the kernel dropped already (EINVAL) is no error."""
    _libc().inotify_rm_watch(fd, wd)


def syscall(number: int, *args: int) -> int:
    """``syscall(number, args...)``; a negative return raises OSError with the kernel's errno."""
    ret = _libc().syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
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

"""tests/tools/gen_syscall_names.py: its parsers, and that the committed table is what it makes on this machine."""

import importlib.util
import textwrap

import pytest

from exporter.sources.syscall_names import NAMES
from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("gen_syscall_names", ROOT / "tests" / "tools" / "gen_syscall_names.py")
assert spec is not None and spec.loader is not None
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

GENERIC = textwrap.dedent(
    """\
    #define __NR_io_setup 0
    __SC_COMP(__NR_io_setup, sys_io_setup, compat_sys_io_setup)
    #define __NR3264_fcntl 25
    __SC_COMP_3264(__NR3264_fcntl, sys_fcntl64, sys_fcntl, compat_sys_fcntl64)
    #ifdef __ARCH_WANT_RENAMEAT
    #define __NR_renameat 38
    #endif /* __ARCH_WANT_RENAMEAT */
    #ifdef __ARCH_WANT_SYNC_FILE_RANGE2
    #define __NR_sync_file_range2 84
    #else
    #define __NR_sync_file_range 84
    #endif
    #if defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32
    #define __NR_futex 98
    #endif
    #define __NR_arch_specific_syscall 244
    #undef __NR_syscalls
    #define __NR_syscalls 451
    #if __BITS_PER_LONG == 64 && !defined(__SYSCALL_COMPAT)
    #define __NR_fcntl __NR3264_fcntl
    #else
    #define __NR_fcntl64 __NR3264_fcntl
    #endif
    """
)


def test_generic_table_as_a_64_bit_architecture_sees_it():
    table = gen.parse_generic(GENERIC, frozenset({"__ARCH_WANT_RENAMEAT"}))
    assert table == {0: "io_setup", 25: "fcntl", 38: "renameat", 84: "sync_file_range", 98: "futex"}


def test_generic_table_without_the_switches():
    table = gen.parse_generic(GENERIC, frozenset({"__ARCH_WANT_SYNC_FILE_RANGE2"}))
    assert 38 not in table and table[84] == "sync_file_range2"


def test_simple_table():
    text = "#ifndef _ASM_UNISTD_64_H\n#define _ASM_UNISTD_64_H\n#define __NR_read 0\n#define __NR_write 1\n"
    assert gen.parse_simple(text) == {0: "read", 1: "write"}


@pytest.mark.live
def test_committed_table_is_what_the_script_makes_from_this_machines_headers():
    if not gen.X86_64_HEADER.exists() or not gen.GENERIC_HEADER.exists():
        pytest.skip("linux-libc-dev headers are not installed")
    tables = {
        "x86_64": gen.parse_simple(gen.X86_64_HEADER.read_text()),
        "aarch64": gen.parse_generic(gen.GENERIC_HEADER.read_text(), gen.AARCH64_WANTS),
    }
    assert {arch: dict(t) for arch, t in NAMES.items()} == tables
    assert (ROOT / "exporter" / "sources" / "syscall_names.py").read_text() == gen.render(tables)

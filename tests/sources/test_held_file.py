import mmap
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.snapshot import describe
from exporter.sources import HeldFile, HeldFiles, SourceError, read_small

IO = Path("/proc/thread-self/io")


def read_syscalls() -> int:
    """This thread's read(2)-family calls so far (syscr, which preads count in; task_io_accounting)."""
    for line in read_small(IO).splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscr in {IO}")


def preads(fn) -> int:
    """The read calls ``fn`` makes, less those of reading the count itself."""
    a = read_syscalls()
    b = read_syscalls()
    fn()
    c = read_syscalls()
    return c - b - (b - a)


needs_io_accounting = pytest.mark.skipif(not IO.exists(), reason="no /proc/thread-self/io (CONFIG_TASK_IO_ACCOUNTING)")


@pytest.fixture
def held() -> Iterator[list[HeldFile]]:
    opened: list[HeldFile] = []
    yield opened
    for h in opened:
        h.close()


def hold(opened: list[HeldFile], path: str | Path, **kw) -> HeldFile:
    h = HeldFile(str(path), **kw)
    opened.append(h)
    return h


def test_a_kernel_file_printed_in_one_go_is_read_fresh_each_time(held):
    """A seq_file read again from offset 0 is generated anew (fs/seq_file.c seq_read_iter)."""
    uptime = hold(held, "/proc/uptime", short_read_ends=True)
    first = uptime.read()
    time.sleep(0.02)  # uptime has 10 ms resolution
    second = uptime.read()
    assert float(second.split()[0]) > float(first.split()[0])
    assert second.endswith("\n") and len(second.split()) == 2


def test_a_kernel_file_printed_record_by_record_is_read_whole_and_fresh(held, tmp_path):
    """/proc/self/maps prints a mapping at a time and returns about a page per read: read to the end each time."""
    maps = hold(held, "/proc/self/maps")
    before = maps.read()
    assert before == before.rstrip("\n") + "\n" and "[stack]" in before  # [stack] comes after every library
    target = tmp_path / "mapped"
    target.write_bytes(b"x" * mmap.PAGESIZE)
    with open(target, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ):
        after = maps.read()
    assert str(target) not in before
    assert str(target) in after and "[stack]" in after


@pytest.mark.parametrize("short_read_ends", [False, True], ids=["to-eof", "short-read-ends"])
@pytest.mark.parametrize(
    "size", [0, 1, 65535, 65536, 3 * 65536 + 5], ids=["empty", "one", "below-chunk", "chunk", "chunks"]
)
def test_reads_the_whole_file_each_time(held, tmp_path, size, short_read_ends):
    path = tmp_path / "f"
    data = bytes(ord("a") + i % 26 for i in range(size))
    path.write_bytes(data)
    h = hold(held, path, short_read_ends=short_read_ends)
    assert h.read() == data.decode()
    assert h.read() == data.decode()


def test_content_rewritten_in_place_is_read_from_the_start(held, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100_000)
    h = hold(held, path, short_read_ends=True)
    assert h.read() == "a" * 100_000
    with open(path, "r+b") as f:  # the same inode: what the held descriptor reads
        f.write(b"b" * 10)
        f.truncate(10)
    assert h.read() == "b" * 10
    with open(path, "r+b") as f:
        f.write(b"c" * 300_000)
    assert h.read() == "c" * 300_000


@needs_io_accounting
def test_a_file_that_outgrew_the_buffer_takes_one_pread_from_the_next_read_on(held, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 200_000)
    h = hold(held, path, short_read_ends=True)
    assert preads(h.read) == 4  # 64 KiB three times, then the rest
    assert preads(h.read) == 1
    with open(path, "ab") as f:  # grows a little: still within the room kept
        f.write(b"x" * 20_000)
    assert preads(h.read) == 1


@needs_io_accounting
def test_proc_stat_is_one_pread_per_read(held):
    stat = hold(held, "/proc/stat", short_read_ends=True)
    stat.read()
    assert preads(stat.read) == 1


@pytest.mark.parametrize("short_read_ends", [False, True], ids=["to-eof", "short-read-ends"])
@pytest.mark.parametrize("limit", [10, 65536, 65537, 1 << 20])
def test_a_file_at_the_limit_is_read_and_one_byte_more_is_refused_naming_it(held, tmp_path, limit, short_read_ends):
    path = tmp_path / "big"
    path.write_bytes(b"x" * limit)
    h = hold(held, path, limit=limit, short_read_ends=short_read_ends)
    assert len(h.read()) == limit
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(SourceError, match=rf"^{path}: larger than {limit} bytes$"):
        h.read()


def test_a_descriptor_closed_under_it_is_opened_again(held, tmp_path):
    path = tmp_path / "f"
    path.write_text("one\n")
    h = hold(held, path)
    assert h.read() == "one\n"
    os.close(h.fileno())
    (tmp_path / "new").write_text("two\n")
    (tmp_path / "new").rename(path)  # another inode: only a descriptor opened again reads it
    assert h.read() == "two\n"
    assert h.read() == "two\n"


def test_an_error_that_persists_names_the_path_and_the_next_read_opens_again(held, tmp_path):
    path = tmp_path / "f"
    path.mkdir()  # opens, but every read fails: EISDIR
    h = hold(held, path)
    with pytest.raises(IsADirectoryError) as e:
        h.read()
    assert e.value.filename == str(path)
    assert describe(e.value) == f"{path}: Is a directory"
    path.rmdir()
    path.write_text("back\n")
    assert h.read() == "back\n"


def test_a_missing_file_is_an_oserror_naming_it(held, tmp_path):
    h = hold(held, tmp_path / "gone")
    with pytest.raises(FileNotFoundError) as e:
        h.read()
    assert describe(e.value) == f"{tmp_path / 'gone'}: missing"
    (tmp_path / "gone").write_text("here\n")
    assert h.read() == "here\n"


def test_bytes_that_are_not_utf8_reach_the_parser_as_replacement_characters(held, tmp_path):
    (tmp_path / "f").write_bytes(b"cpu MHz : 2\xff00\n")
    assert hold(held, tmp_path / "f").read() == "cpu MHz : 2\ufffd00\n"


def test_held_files_keep_one_descriptor_per_path_until_closed(tmp_path):
    (tmp_path / "a").write_text("a1\n")
    files = HeldFiles()
    assert files.read(str(tmp_path / "a")) == "a1\n"
    (tmp_path / "b").write_text("b\n")
    (tmp_path / "b").rename(tmp_path / "a")  # the held descriptor still reads the inode it opened
    assert files.read(str(tmp_path / "a")) == "a1\n"
    assert files.paths() == {str(tmp_path / "a")}
    files.close()
    assert files.paths() == frozenset()
    assert files.read(str(tmp_path / "a")) == "b\n"
    files.close()


LO_RX_BYTES = Path("/sys/class/net/lo/statistics/rx_bytes")


@pytest.mark.skipif(not LO_RX_BYTES.exists(), reason="no loopback statistics in sysfs")
def test_a_held_sysfs_attribute_is_printed_afresh_at_each_read():
    """One pread at offset 0 through the held descriptor reads the value of now (fs/sysfs/file.c)."""
    files = HeldFiles()
    try:
        before = int(files.read_attribute(str(LO_RX_BYTES), 32))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x" * 1000, ("127.0.0.1", 9))
        after = int(files.read_attribute(str(LO_RX_BYTES), 32))
        assert after >= before + 1000
        assert files.paths() == {str(LO_RX_BYTES)}
    finally:
        files.close()


def test_a_held_attribute_whose_file_went_is_reported_missing_and_its_descriptor_dropped():
    """A held kernel file whose object went (here a process's stat: ESRCH, as a removed sysfs attribute
    gives ENODEV) is opened again once: the path is gone, so FileNotFoundError names it."""
    child = subprocess.Popen(["sleep", "60"])
    path = f"/proc/{child.pid}/stat"
    files = HeldFiles()
    try:
        assert files.read_attribute(path, 4096).startswith(f"{child.pid} (sleep)".encode())
        child.kill()
        child.wait()
        with pytest.raises(FileNotFoundError) as e:
            files.read_attribute(path, 4096)
        assert describe(e.value) == f"{path}: missing"
        assert files.paths() == frozenset()
    finally:
        files.close()


def test_an_attribute_that_cannot_be_read_names_it_and_is_held_again_once_it_reads(tmp_path):
    path = tmp_path / "scaling_cur_freq"
    path.mkdir()  # opens, and every read of it fails
    files = HeldFiles()
    try:
        with pytest.raises(IsADirectoryError) as e:
            files.read_attribute(str(path), 32)
        assert describe(e.value) == f"{path}: Is a directory"
        assert files.paths() == frozenset()
        path.rmdir()
        path.write_text("800000\n")
        assert files.read_attribute(str(path), 32) == b"800000\n"
        assert files.paths() == {str(path)}
    finally:
        files.close()


def test_past_max_files_a_file_is_opened_at_each_read(tmp_path):
    for name in "abc":
        (tmp_path / name).write_text(f"{name}1\n")
    files = HeldFiles(max_files=2)
    try:
        assert files.read(str(tmp_path / "a")) == "a1\n"
        assert files.read_attribute(str(tmp_path / "b"), 32) == b"b1\n"
        assert files.read_attribute(str(tmp_path / "c"), 32) == b"c1\n"
        assert files.read(str(tmp_path / "c")) == "c1\n"
        assert files.paths() == {str(tmp_path / "a"), str(tmp_path / "b")}
        for name in "abc":  # replaced by rename: only the files past the bound, opened at each read, see it
            (tmp_path / "new").write_text(f"{name}2\n")
            (tmp_path / "new").rename(tmp_path / name)
        assert files.read(str(tmp_path / "a")) == "a1\n"
        assert files.read_attribute(str(tmp_path / "b"), 32) == b"b1\n"
        assert files.read_attribute(str(tmp_path / "c"), 32) == b"c2\n"
        assert files.read(str(tmp_path / "c")) == "c2\n"
        assert len(files.paths()) == 2
    finally:
        files.close()
    assert files.paths() == frozenset()

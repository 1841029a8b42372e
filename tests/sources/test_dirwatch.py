import os
import struct
import threading

import pytest

from exporter.sources import dirwatch
from exporter.sources.dirwatch import (
    IN_IGNORED,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    DirectoryWatch,
    open_watch,
    watch_budget,
)
from exporter.sources.libc import filesystem_type


def event(wd: int, mask: int, name: bytes = b"") -> bytes:
    padded = name + b"\0" * (-len(name) % 16) if name else b""
    return struct.pack("iIII", wd, mask, 0, len(padded)) + padded


class PipeWatch:
    """A DirectoryWatch reading crafted events from a pipe, its watches handed out by a counter."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.added: list[bytes] = []
        self.watch = DirectoryWatch(self.read_end, add=self.add)
        self.watch._remove = lambda fd, wd: 0

    def add(self, fd: int, path: bytes, mask: int) -> int:
        self.added.append(path)
        return len(self.added)

    def send(self, *events: bytes) -> None:
        os.write(self.write_end, b"".join(events))


@pytest.fixture
def pipe():
    p = PipeWatch()
    yield p
    os.close(p.write_end)
    p.watch.close()


KEY = (1, 2, 3)


def cycle(watch: DirectoryWatch, *directories: str, key=KEY) -> dict[str, bool]:
    """One reader's cycle: which directories were quiet (the rest are armed, as the reader does)."""
    assert watch.begin()
    quiet = {}
    for d in directories:
        quiet[d] = watch.quiet(d, key)
        if not quiet[d]:
            watch.arm(d, key)
    watch.end(directories)
    return quiet


def test_a_directory_is_quiet_from_the_cycle_after_it_was_armed_until_an_event_names_it(pipe):
    assert cycle(pipe.watch, "/a", "/b") == {"/a": False, "/b": False}
    assert cycle(pipe.watch, "/a", "/b") == {"/a": True, "/b": True}
    pipe.send(event(1, IN_MODIFY, b"memory.max"))
    assert cycle(pipe.watch, "/a", "/b") == {"/a": False, "/b": True}  # /a's watch is descriptor 1
    assert cycle(pipe.watch, "/a", "/b") == {"/a": True, "/b": True}


def test_a_new_inode_under_the_same_path_is_not_quiet(pipe):
    # cgroupfs raises no event when a watched cgroup is removed: one made again under its name is
    # told apart by its inode alone
    cycle(pipe.watch, "/a")
    assert cycle(pipe.watch, "/a", key=(1, 9, 3)) == {"/a": False}
    assert cycle(pipe.watch, "/a", key=(1, 9, 3)) == {"/a": True}
    assert cycle(pipe.watch, "/a", key=(1, 9, 4)) == {"/a": False}  # same inode number, new change time


def test_lost_events_make_every_directory_read_again(pipe):
    cycle(pipe.watch, "/a", "/b")
    pipe.send(event(-1, IN_Q_OVERFLOW))
    assert cycle(pipe.watch, "/a", "/b") == {"/a": False, "/b": False}
    assert pipe.watch.overflows == 1


def test_a_dropped_watch_is_forgotten_and_set_again(pipe):
    cycle(pipe.watch, "/a")
    pipe.send(event(1, IN_IGNORED))
    assert cycle(pipe.watch, "/a") == {"/a": False}
    assert pipe.added == [b"/a", b"/a"]
    assert pipe.watch.armed["/a"][1] == 2


def test_many_events_with_names_of_any_length(pipe):
    cycle(pipe.watch, *(f"/d{i}" for i in range(300)))
    pipe.send(*(event(i + 1, IN_MODIFY, b"x" * (i % 40)) for i in range(0, 300, 2)))  # > one 4 KiB page
    quiet = cycle(pipe.watch, *(f"/d{i}" for i in range(300)))
    assert [d for d, q in quiet.items() if not q] == [f"/d{i}" for i in range(0, 300, 2)]


def test_watches_of_directories_not_reached_go(pipe):
    removed = []
    pipe.watch._remove = lambda fd, wd: removed.append(wd) or 0
    cycle(pipe.watch, "/a", "/b")
    cycle(pipe.watch, "/b")
    assert set(pipe.watch.armed) == {"/b"} and removed == [1]
    assert cycle(pipe.watch, "/a", "/b") == {"/a": False, "/b": True}


def test_one_inode_by_two_paths_shares_its_descriptor(pipe):
    pipe.watch._add = lambda fd, path, mask: 7
    removed = []
    pipe.watch._remove = lambda fd, wd: removed.append(wd) or 0
    cycle(pipe.watch, "/cpu/x", "/cpuacct/x")
    pipe.send(event(7, IN_MODIFY, b"cpu.shares"))
    assert cycle(pipe.watch, "/cpu/x", "/cpuacct/x") == {"/cpu/x": False, "/cpuacct/x": False}
    cycle(pipe.watch, "/cpu/x")
    assert removed == []  # still watched through the other path
    cycle(pipe.watch)
    assert removed == [7]


def test_a_refused_watch_leaves_the_directory_read_every_cycle(pipe, monkeypatch):
    pipe.watch._add = lambda fd, path, mask: -1  # ENOSPC: fs.inotify.max_user_watches reached
    for _ in range(3):
        assert cycle(pipe.watch, "/a") == {"/a": False}
    assert pipe.watch.armed == {}


def test_watches_are_capped(pipe):
    pipe.watch.max_watches = 2
    cycle(pipe.watch, "/a", "/b", "/c")
    assert cycle(pipe.watch, "/a", "/b", "/c") == {"/a": True, "/b": True, "/c": False}


def test_a_second_cycle_while_one_runs_is_told_no(pipe):
    assert pipe.watch.begin()
    other: list[bool] = []
    t = threading.Thread(target=lambda: other.append(pipe.watch.begin()))
    t.start()
    t.join()
    assert other == [False]
    pipe.watch.end([])
    assert pipe.watch.begin()
    pipe.watch.end([])


def test_real_inotify_sees_a_write_and_a_replace(tmp_path):
    d = tmp_path / "cg"
    d.mkdir()
    (d / "memory.max").write_text("1\n")
    watch = open_watch([tmp_path])
    assert watch is not None  # tmp_path is on a local filesystem
    key = lambda: (lambda st: (st.st_dev, st.st_ino, st.st_ctime_ns))(os.stat(d))  # noqa: E731
    try:
        assert watch.begin()
        watch.arm(str(d), key())
        watch.end([str(d)])
        assert watch.begin() and watch.quiet(str(d), key())
        watch.end([str(d)])
        (d / "memory.max").write_text("2\n")
        assert watch.begin() and not watch.quiet(str(d), key())
        watch.arm(str(d), key())
        watch.end([str(d)])
        (d / "new").write_text("3\n")
        os.replace(d / "new", d / "memory.max")
        assert watch.begin() and not watch.quiet(str(d), key())
        watch.end([str(d)])
    finally:
        watch.close()


def test_only_local_filesystems_are_watched(tmp_path, monkeypatch):
    assert filesystem_type(tmp_path) in dirwatch.LOCAL_FILESYSTEMS
    with pytest.raises(OSError):
        filesystem_type(tmp_path / "missing")
    assert open_watch([tmp_path / "missing"]) is None
    monkeypatch.setattr(dirwatch, "filesystem_type", lambda path: 0x6969)  # NFS_SUPER_MAGIC
    assert open_watch([tmp_path]) is None


def test_unchanged_from_the_cycle_after_arming_and_every_directory_relisted_every_so_often(pipe):
    assert pipe.watch.begin() and pipe.watch.relist  # the first cycle lists everything
    pipe.watch.arm("/a", None)
    assert not pipe.watch.unchanged("/a")  # armed this cycle: its listing is taken now
    pipe.watch.end(["/a"])
    relisted = []
    for _ in range(2 * dirwatch.RELIST_EVERY):
        assert pipe.watch.begin() and pipe.watch.unchanged("/a")
        relisted.append(pipe.watch.relist)
        pipe.watch.end(["/a"])
    assert relisted.count(True) == 2 and relisted[dirwatch.RELIST_EVERY - 1]
    pipe.watch.begin()
    pipe.watch.changed("/a")
    assert not pipe.watch.unchanged("/a")
    pipe.watch.end(["/a"])


@pytest.mark.parametrize(
    ("text", "budget"), [("8192\n", 1024), ("1048576\n", dirwatch.MAX_WATCHES), ("7\n", 0), ("lots\n", 0), (None, 0)]
)
def test_the_watch_takes_an_eighth_of_the_users_inotify_watches(tmp_path, text, budget):
    inotify = tmp_path / "sys" / "fs" / "inotify"
    inotify.mkdir(parents=True)
    if text is not None:
        (inotify / "max_user_watches").write_text(text)
    assert watch_budget(tmp_path) == budget


def test_no_budget_no_watch(tmp_path):
    assert open_watch([tmp_path], max_watches=0) is None
    watch = open_watch([tmp_path], max_watches=3)
    assert watch is not None and watch.max_watches == 3
    watch.close()


def test_no_inotify_no_watch(tmp_path, monkeypatch):
    def refused(flags: int) -> int:
        raise OSError(24, "Too many open files")  # EMFILE; a seccomp filter gives EPERM the same way

    monkeypatch.setattr(dirwatch, "inotify_init1", refused)
    assert open_watch([tmp_path]) is None


def test_a_directory_written_many_times_raises_one_event_until_armed_again(tmp_path):
    # oneshot watches: the queue holds at most an event and the watch's end per directory between cycles
    watch = open_watch([tmp_path])
    assert watch is not None
    try:
        assert watch.begin()
        watch.arm(str(tmp_path), (0, 0, 0))
        watch.end([str(tmp_path)])
        for n in range(5):
            (tmp_path / f"memory.max{n}").write_text("1\n")
        raw = os.read(watch.fd, 65536)
        masks = [struct.unpack_from("iIII", raw, offset)[1] for offset in _offsets(raw)]
        assert [m & ~dirwatch.IN_ONESHOT for m in masks] == [dirwatch.IN_CREATE, IN_IGNORED]
    finally:
        watch.close()


def _offsets(raw: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset < len(raw):
        offsets.append(offset)
        offset += 16 + struct.unpack_from("iIII", raw, offset)[3]
    return offsets

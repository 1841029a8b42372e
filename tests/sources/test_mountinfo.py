import os
import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.mountinfo import MountInfo, on_kernel_filesystem, parse_mountinfo, read_mountinfo

# Lines of /proc/self/mountinfo on this project's machine kind (Debian 12, hybrid cgroups), and one with
# no optional fields, one with two, and an escaped space in the mount point.
TEXT = textwrap.dedent(
    """\
    25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
    41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
    30 25 0:27 /kubepods/pod1 /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
    50 25 0:45 / /mnt/my\\040disk rw shared:20 master:3 - ext4 /dev/vdb\\040x rw
    """
)


def test_parse_mountinfo_fields():
    assert parse_mountinfo(TEXT) == [
        MountInfo(25, 1, "/", "/", "ext4", "/dev/vda", "254:1", "/"),
        MountInfo(41, 31, "/", "/sys/fs/cgroup/unified", "cgroup2", "cgroup2", "0:38", "/sys/fs/cgroup/unified"),
        MountInfo(30, 25, "/kubepods/pod1", "/sys/fs/cgroup", "cgroup2", "cgroup2", "0:27", "/sys/fs/cgroup"),
        MountInfo(50, 25, "/", "/mnt/my disk", "ext4", "/dev/vdb x", "0:45", "/mnt/my disk"),
    ]


def test_read_only_from_the_mount_or_the_superblock():
    ro_mount, ro_super, rw = parse_mountinfo(
        b"1 0 8:1 / /a ro,relatime - ext4 /dev/sda1 rw\n"
        b"2 0 8:2 / /b rw - ext4 /dev/sda2 ro,errors=remount-ro\n"
        b"3 0 8:3 / /c rw - ext4 /dev/sda3 rw\n"
    )
    assert (ro_mount.readonly, ro_super.readonly, rw.readonly) == (True, True, False)


def test_a_path_that_is_not_utf8_keeps_its_bytes_for_system_calls():
    (m,) = parse_mountinfo(b"1 0 8:1 / /caf\\351 rw - ext4 /dev/sda1 rw\n")
    assert m.mount_point == "/caf\\xe9" and os.fsencode(m.path) == b"/caf\xe9"


@pytest.mark.parametrize(("text", "count"), [("", 0), ("\n", 0), (TEXT + "\n", 4)], ids=["empty", "blank", "trailing"])
def test_blank_lines_hold_no_mount(text, count):
    assert len(parse_mountinfo(text)) == count


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("25 1 254:1 / / rw,relatime shared:1\n", "expected 6 fields"),  # truncated before the separator
        ("25 1 254:1 / / rw - ext4\n", "expected 6 fields"),  # truncated after it
        ("25 1 254:1 / - ext4 /dev/vda rw\n", "expected 6 fields"),  # too few fields before it
        ("x 1 254:1 / / rw - ext4 /dev/vda rw\n", "mount ids 'x' '1' are not numbers"),
    ],
    ids=["truncated", "truncated-after-separator", "missing-field", "id-not-a-number"],
)
def test_malformed_mountinfo_is_a_source_error_naming_the_line(text, message):
    with pytest.raises(SourceError, match=rf"^/proc/self/mountinfo:1: {message}"):
        parse_mountinfo(text)


def test_read_mountinfo(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(TEXT)
    assert [m.mount_point for m in read_mountinfo(tmp_path)][:2] == ["/", "/sys/fs/cgroup/unified"]


# A container's view: the host's /proc with lxcfs FUSE files mounted over two of its files, sysfs, a tmpfs
# and an NFS mount inside a sysfs directory (what a read below that directory would reach).
CONTAINER = parse_mountinfo(
    textwrap.dedent(
        """\
        25 1 0:50 / / rw - overlay overlay rw
        26 25 0:51 / /proc rw,nosuid - proc proc rw
        27 26 0:52 /proc/meminfo /proc/meminfo rw - fuse.lxcfs lxcfs rw
        28 26 0:52 /proc/stat /proc/stat rw - fuse.lxcfs lxcfs rw
        29 25 0:53 / /sys rw - sysfs sysfs rw
        30 29 0:54 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
        31 25 0:55 / /run rw - tmpfs tmpfs rw
        32 29 0:56 / /sys/devices/virtual/net/x rw - nfs server:/x rw
        """
    )
)


@pytest.mark.parametrize(
    ("path", "kernel"),
    [
        ("/proc/loadavg", True),
        ("/proc/net/dev", True),
        ("/proc/meminfo", False),  # lxcfs: a FUSE daemon answers the read
        ("/proc/stat", False),
        ("/proc", False),  # holds the lxcfs mounts
        ("/sys/devices/system/cpu", True),
        ("/sys/devices/virtual", False),  # the NFS mount below it
        ("/sys/fs/cgroup/memory.stat", False),  # cgroup2 is not in the set
        ("/run/sysmon/host.json", False),
        ("/srv/fixture/proc/stat", False),  # a tree of ordinary files (the overlay root)
    ],
    ids=lambda v: str(v),
)
def test_on_kernel_filesystem(path, kernel):
    assert on_kernel_filesystem(CONTAINER, path) is kernel


def test_a_later_mount_on_the_same_point_hides_the_earlier():
    mounts = parse_mountinfo(
        b"1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / /p rw - proc proc rw\n3 1 0:3 / /p rw - fuse x rw\n"
    )
    assert on_kernel_filesystem(mounts, "/p/stat") is False
    assert on_kernel_filesystem(list(reversed(mounts)), "/p/stat") is True


def test_no_mounts_is_not_kernel():
    assert on_kernel_filesystem([], "/proc/stat") is False

import errno
import os
import textwrap
from pathlib import Path

import pytest

from exporter.sources import SourceError
from exporter.sources.mounts import Mount, parse_mounts, read_filesystems, read_mounts, real_filesystems
from tests.helpers import FIXTURES

TEXT = textwrap.dedent("""\
    proc /proc proc rw,relatime 0 0
    /dev/vda1 / ext4 rw,relatime 0 0
    /dev/vda2 /boot ext4 ro,relatime 0 0
    /dev/sdb1 /mnt/my\\040disk xfs rw 0 0
    /dev/loop3 /snap/core/1 squashfs ro,nodev 0 0
    server:/export /nfs nfs4 rw 0 0
    tmpfs /run tmpfs rw 0 0
    /dev/vda1 /var/lib/docker/overlay2 ext4 rw 0 0
    /dev/vda3 /srv ext4 rw 0 0
    tmpfs /srv tmpfs rw 0 0
""")


def test_parse_unescapes_and_reads_ro():
    mounts = parse_mounts(TEXT)
    assert mounts[2] == Mount("/dev/vda2", "/boot", "ext4", True)
    assert mounts[3].mount_point == "/mnt/my disk"
    assert len(mounts) == 10


def test_real_filesystems_are_block_devices_not_images_bind_mounts_or_overmounted():
    points = [m.mount_point for m in real_filesystems(parse_mounts(TEXT))]
    assert points == ["/", "/boot", "/mnt/my disk"]


@pytest.mark.parametrize("text", ["/dev/vda1 / ext4\n", "garbage\n"], ids=["truncated", "one-field"])
def test_malformed(text):
    with pytest.raises(SourceError, match="expected at least 4 fields"):
        parse_mounts(text)


def test_fixture_and_statvfs_below_rootfs(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        if path.endswith("boot"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return os.statvfs_result((4096, 4096, 10, 4, 3, 8, 2, 2, 0, 255))

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "mounts").write_text(TEXT)
    root, boot, disk = read_filesystems(tmp_path, FIXTURES / "vm-2cpu", statvfs)
    host = FIXTURES / "vm-2cpu"
    assert seen == [str(host), str(host / "boot"), str(host / "mnt" / "my disk")]
    assert (root.size_bytes, root.free_bytes, root.avail_bytes, root.used_bytes) == (40960, 16384, 12288, 24576)
    assert (root.files, root.files_free) == (8, 2)
    assert boot.error.endswith("boot: Permission denied") and boot.size_bytes == 0
    assert (disk.mount_point, disk.fstype, disk.error) == ("/mnt/my disk", "xfs", "")
    assert [m.mount_point for m in read_mounts(FIXTURES / "vm-2cpu" / "proc")][:2] == ["/proc", "/sys"]


def test_missing_mounts_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_mounts(tmp_path)


@pytest.mark.live
def test_this_machines_root_filesystem():
    (root,) = [fs for fs in read_filesystems(Path("/proc"), Path("/")) if fs.mount_point == "/"]
    st = os.statvfs("/")
    assert root.size_bytes == st.f_blocks * st.f_frsize
    assert 0 < root.used_bytes <= root.size_bytes

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from exporter.sources import SourceError
from exporter.sources.mounts import (
    Mount,
    MountFilter,
    parse_mounts,
    read_filesystems,
    read_mounts,
    real_filesystems,
)
from tests.helpers import FIXTURES, ROOT, require_root

TEXT = textwrap.dedent("""\
    22 27 0:21 / /proc rw,relatime - proc proc rw
    27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
    28 27 254:2 / /boot ro,relatime shared:2 - ext4 /dev/vda2 rw
    29 27 8:17 / /mnt/my\\040disk rw shared:3 - xfs /dev/sdb1 rw
    30 27 7:3 / /snap/core/1 ro,nodev - squashfs /dev/loop3 ro
    31 27 0:50 / /nfs rw - nfs4 server:/export rw
    32 27 0:25 / /run rw - tmpfs tmpfs rw
    33 27 254:1 /var/lib/docker/overlay2 /var/lib/docker/overlay2 rw - ext4 /dev/vda1 rw
    34 27 254:3 / /srv rw - ext4 /dev/vda3 rw
    35 34 0:51 / /srv rw - tmpfs tmpfs rw
""").encode()


def test_parse_unescapes_and_reads_ro():
    mounts = parse_mounts(TEXT)
    assert mounts[2] == Mount("/dev/vda2", "/boot", "ext4", True, "/", "254:2", "/boot")
    assert mounts[3].mount_point == "/mnt/my disk"
    assert len(mounts) == 10


def test_superblock_read_only_is_read_only():
    (m,) = parse_mounts(b"27 1 254:1 / / rw,relatime - ext4 /dev/vda1 ro,errors=remount-ro\n")
    assert m.readonly


def test_real_filesystems_are_block_devices_not_images_bind_mounts_or_overmounted():
    points = [m.mount_point for m in real_filesystems(parse_mounts(TEXT))]
    assert points == ["/", "/boot", "/mnt/my disk"]


@pytest.mark.parametrize(
    "text",
    [b"27 1 254:1 / / rw\n", b"27 1 254:1 / / rw - ext4\n", b"garbage\n"],
    ids=["no-separator", "no-source", "one-field"],
)
def test_malformed(text):
    with pytest.raises(SourceError, match=r"mountinfo:1: expected 6 fields, optional fields, '-', fstype and source"):
        parse_mounts(text)


BINDS = textwrap.dedent("""\
    46 45 254:0 / / rw,relatime - ext4 /dev/vda rw
    66 46 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
    70 46 254:0 / /mnt/host rw,relatime - ext4 /dev/vda rw
    71 46 254:0 /srv/data /data rw,relatime - ext4 /dev/vda rw
    72 46 0:40 /@ /home rw - btrfs /dev/sdb rw
    73 46 0:40 /@home /home/users rw - btrfs /dev/sdb rw
""").encode()


def test_one_mount_per_device_and_root():
    """/run/netns (bound onto itself) and /mnt/host (the same root again) show what / shows; the rest differ."""
    points = [(m.mount_point, m.root) for m in real_filesystems(parse_mounts(BINDS))]
    assert points == [("/", "/"), ("/data", "/srv/data"), ("/home", "/@"), ("/home/users", "/@home")]


def test_this_machines_netns_bind_mount_is_reported_once():
    """The fixture copied from a VM after `ip netns add`: /dev/vda at / and at /run/netns."""
    mounts = read_mounts(FIXTURES / "vm-2cpu" / "proc")
    assert [m.mount_point for m in mounts if m.device == "/dev/vda"] == ["/", "/run/netns"]
    assert [m.mount_point for m in real_filesystems(mounts)] == ["/"]


@pytest.mark.parametrize(
    ("only", "points"),
    [
        (MountFilter(), ["/", "/boot", "/mnt/my disk"]),
        (MountFilter(re.compile("^/boot$")), ["/", "/mnt/my disk"]),
        (MountFilter(fs_types_exclude=re.compile("^xfs$")), ["/", "/boot", "/snap/core/1"]),
        # the docker bind is still left out: it shows the directory / already shows
        (MountFilter(None, None), ["/", "/boot", "/mnt/my disk", "/snap/core/1"]),
    ],
    ids=["node-exporter-defaults", "mount-point", "fs-type", "nothing-excluded"],
)
def test_exclusions(only, points):
    assert [m.mount_point for m in real_filesystems(parse_mounts(TEXT), only)] == points


@pytest.mark.parametrize(
    "point",
    [
        "/dev",
        "/dev/shm",
        "/proc",
        "/sys/fs",
        "/run/credentials/x.service",
        "/var/lib/docker/overlay2/a/merged",
        "/var/lib/containers/storage/overlay",
        "/var/lib/kubelet/pods/u/volumes/v",
    ],
)
def test_default_mount_points_excluded(point):
    assert MountFilter().excludes(Mount("/dev/vda", point, "ext4", False))


@pytest.mark.parametrize("point", ["/", "/run", "/var/lib/docker", "/var/lib/kubelet", "/srv", "/devices"])
def test_default_mount_points_kept(point):
    assert not MountFilter().excludes(Mount("/dev/vda", point, "ext4", False))


def test_a_non_utf8_mount_point_fails_only_itself(tmp_path):
    """Bytes that are not UTF-8 reach the label escaped and statvfs as they are; every other mount is kept."""
    text = (
        TEXT + b"40 27 8:33 / /mnt/caf\xe9 rw - ext4 /dev/sdc1 rw\n41 27 8:49 / /mnt/gone\xff rw - ext4 /dev/sdd1 rw\n"
    )
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "mountinfo").write_bytes(text)
    host = tmp_path / "root"
    (host / "mnt").mkdir(parents=True)
    (host / os.fsdecode(b"mnt/caf\xe9")).mkdir()
    seen = []

    def statvfs(path):
        seen.append(path)
        os.stat(path)  # the real path, as the kernel named it
        return os.statvfs_result((4096, 4096, 10, 4, 3, 8, 2, 2, 0, 255))

    by_point = {fs.mount_point: fs for fs in read_filesystems(tmp_path, host, statvfs)}
    assert list(by_point) == ["/", "/boot", "/mnt/caf\\xe9", "/mnt/gone\\xff", "/mnt/my disk"]
    assert by_point["/mnt/caf\\xe9"].error == "" and by_point["/mnt/caf\\xe9"].size_bytes == 40960
    assert by_point["/mnt/gone\\xff"].error == f"{host}/mnt/gone\\xff: No such file or directory"
    assert by_point["/"].error == ""
    assert str(host / os.fsdecode(b"mnt/caf\xe9")) in seen


def test_fixture_and_statvfs_below_rootfs(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        if path.endswith("boot"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return os.statvfs_result((4096, 4096, 10, 4, 3, 8, 2, 2, 0, 255))

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "mountinfo").write_bytes(TEXT)
    root, boot, disk = read_filesystems(tmp_path, FIXTURES / "vm-2cpu", statvfs)
    host = FIXTURES / "vm-2cpu"
    assert seen == [str(host), str(host / "boot"), str(host / "mnt" / "my disk")]
    assert (root.size_bytes, root.free_bytes, root.avail_bytes, root.used_bytes) == (40960, 16384, 12288, 24576)
    assert (root.files, root.files_free) == (8, 2)
    assert boot.error.endswith("boot: Permission denied") and boot.size_bytes == 0
    assert (disk.mount_point, disk.fstype, disk.error) == ("/mnt/my disk", "xfs", "")
    assert [m.mount_point for m in read_mounts(FIXTURES / "vm-2cpu" / "proc")][:2] == ["/", "/proc"]


def test_init_not_found_falls_back_to_self(tmp_path):
    """hidepid=invisible: /1 is not there (permission denied, hidepid=noaccess, is the live test below)."""
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_bytes(TEXT)
    assert len(read_mounts(tmp_path)) == 10


def test_missing_mounts_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_mounts(tmp_path)


@pytest.mark.live
def test_this_machines_root_filesystem():
    (root,) = [fs for fs in read_filesystems(Path("/proc"), Path("/")) if fs.mount_point == "/"]
    st = os.statvfs("/")
    assert root.size_bytes == st.f_blocks * st.f_frsize
    assert 0 < root.used_bytes <= root.size_bytes


@pytest.mark.live
@pytest.mark.parametrize("hidepid", ["invisible", "noaccess"])
def test_private_procfs_with_hidepid_read_as_nobody(hidepid):
    """A procfs of our own mounted hidepid=..., in a private mount namespace, read by uid 65534.

    invisible hides /1 (not found), noaccess lists it but refuses it (permission denied);
    either way the filesystems come from self/mountinfo and / is among them.
    """
    require_root()
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (util-linux)")
    point = Path(tempfile.mkdtemp(prefix="sysmon-hidepid-"))
    point.chmod(0o755)
    script = (
        "import json, os, sys; from pathlib import Path; from exporter.sources.mounts import read_filesystems\n"
        "procfs = Path(sys.argv[1])\n"
        "try:\n"
        "    (procfs / '1' / 'mountinfo').read_bytes(); init = 'readable'\n"
        "except OSError as e:\n"
        "    init = type(e).__name__\n"
        "fs = read_filesystems(procfs, Path('/'))\n"
        "print(json.dumps({'uid': os.getuid(), 'init': init, 'points': [f.mount_point for f in fs]}))\n"
    )
    inner = (
        f"mount -t proc -o hidepid={hidepid} proc {point} && "
        f'exec setpriv --reuid=65534 --regid=65534 --clear-groups {sys.executable} -c "$0" {point}'
    )
    try:
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, script],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
    finally:
        point.rmdir()  # the mount lived only in the child's namespace
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["uid"] == 65534
    assert result["init"] == {"invisible": "FileNotFoundError", "noaccess": "PermissionError"}[hidepid]
    assert "/" in result["points"]


@pytest.mark.live
def test_a_real_mount_at_a_non_utf8_path(tmp_path):
    """The kernel's own mountinfo line for a bind mount at b'caf\\xe9', in a private mount namespace."""
    require_root()
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (util-linux)")
    source, target = tmp_path / "source", os.fsdecode(bytes(tmp_path) + b"/caf\xe9")
    source.mkdir()
    os.mkdir(target)
    (tmp_path / "procfs").mkdir()
    (tmp_path / "procfs" / "1").symlink_to("/proc/self")  # this namespace's table, read as init's
    script = (
        "import json, os, subprocess, sys; from pathlib import Path\n"
        "from exporter.sources.mounts import read_filesystems\n"
        "source, target, procfs = sys.argv[1], os.fsdecode(os.fsencode(sys.argv[2])), Path(sys.argv[3])\n"
        "subprocess.run(['mount', '--bind', source, target], check=True)\n"
        "print(json.dumps({f.mount_point: f.error for f in read_filesystems(procfs, Path('/'))}))\n"
    )
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script,
         str(source), target, str(tmp_path / "procfs")],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    errors = json.loads(out.stdout)
    assert errors[f"{tmp_path}/caf\\xe9"] == ""  # reported, its bytes escaped in the label, and measured
    assert errors["/"] == ""

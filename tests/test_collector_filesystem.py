from exporter.collector import Renderer
from exporter.collector.filesystem import collect_filesystem
from exporter.snapshot import Snapshot
from exporter.sources.mounts import Filesystem
from tests.helpers import parse_exposition


def test_a_filesystem_that_failed_statvfs_has_only_its_error_and_readonly_series():
    snap = Snapshot(
        filesystems=(
            Filesystem("/dev/vda", "/", "ext4", False, 100, 40, 30, 10, 5),
            Filesystem("/dev/vdb", "/ro", "ext4", True, error="/ro: Permission denied"),
        )
    )
    m = parse_exposition(Renderer([collect_filesystem])(snap).body(False, False)[0].decode())
    root = (("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/"))
    ro = (("device", "/dev/vdb"), ("fstype", "ext4"), ("mountpoint", "/ro"))
    assert m["sysmon_filesystem_size_bytes"] == {root: 100.0}
    assert m["sysmon_filesystem_avail_bytes"] == {root: 30.0}
    assert m["sysmon_filesystem_files_free"] == {root: 5.0}
    assert m["sysmon_filesystem_device_error"] == {root: 0.0, ro: 1.0}
    assert m["sysmon_filesystem_readonly"] == {root: 0.0, ro: 1.0}


def test_no_filesystems_no_families():
    assert list(collect_filesystem(Snapshot())) == []

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


def test_exclude_flags_reach_the_running_exporter(tmp_path):
    """Two block-device mounts under a real rootfs; each flag leaves out what it matches, empty leaves out nothing."""
    import shutil

    from tests.helpers import FIXTURES, run_exporter

    host = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", host)
    for point in ("srv", "var/lib/kubelet/pods/u/volumes/v"):
        (host / point).mkdir(parents=True)
    (host / "proc" / "1" / "mountinfo").write_text(
        "1 0 254:0 / / rw - ext4 /dev/vda rw\n"
        "2 1 254:1 / /srv rw - xfs /dev/vdb rw\n"
        "3 1 254:2 / /var/lib/kubelet/pods/u/volumes/v rw - ext4 /dev/vdc rw\n"
    )
    common = [f"--path.procfs={host / 'proc'}", f"--path.sysfs={host / 'sys'}", f"--path.rootfs={host}"]
    common += ["--no-collector.perf", "--no-collector.cgroup"]

    def points(*flags: str) -> set[str]:
        with run_exporter([*common, *flags], tmp_path) as exp:
            m = parse_exposition(exp.metrics())
        return {dict(labels)["mountpoint"] for labels in m["sysmon_filesystem_size_bytes"]}

    assert points() == {"/", "/srv"}
    assert points("--filesystem.mount-points-exclude=^/srv$") == {"/", "/var/lib/kubelet/pods/u/volumes/v"}
    assert points("--filesystem.fs-types-exclude=^xfs$") == {"/"}
    assert points("--filesystem.mount-points-exclude=", "--filesystem.fs-types-exclude=") == {
        "/",
        "/srv",
        "/var/lib/kubelet/pods/u/volumes/v",
    }

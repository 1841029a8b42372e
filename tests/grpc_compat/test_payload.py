import json
from dataclasses import replace

import pytest

from exporter.grpc_compat.payload import build_payload, rfc3339, usage_percent
from exporter.snapshot import SourceStatus
from exporter.sources.meminfo import read_meminfo
from exporter.sources.mounts import Filesystem, read_filesystems
from tests.grpc_compat.agent import HOST, RFC3339, VM, check_payload, fixture_step, windowed_snapshot
from tests.helpers import GOLDEN
from tests.test_golden import FixedClock, fixed_statvfs


def test_payload_from_the_vm_fixture(tmp_path):
    snap = windowed_snapshot(tmp_path)
    available, raw = build_payload(snap, lambda: 1234)
    assert available
    doc = check_payload(raw, HOST)
    assert doc["response_time"] == 1234
    status = doc["status"]
    assert [c["core_id"] for c in status["cpus"]] == [0, 1]
    assert [c["usage_percent"] for c in status["cpus"]] == [25.0, 0.0]
    assert [c["frequency_hz"] for c in status["cpus"]] == [2599998000.0, 2599998000.0]
    assert {c["frequency_source"] for c in status["cpus"]} == {"cpuinfo"}
    mem = read_meminfo(VM / "proc")
    assert status["memory"]["used_bytes"] == mem.used_bytes
    assert status["memory"]["total_bytes"] == mem.total_bytes
    assert status["timestamp"] == rfc3339(snap.timestamp_seconds)


def test_usage_percent_is_the_ratio_times_100(tmp_path):
    snap = replace(windowed_snapshot(tmp_path), cpu_usage_ratio={0: 0.25, 1: 1.0})
    doc = json.loads(build_payload(snap, lambda: 1)[1])
    assert [c["usage_percent"] for c in doc["status"]["cpus"]] == [25.0, 100.0]
    assert usage_percent(0.5) == 50.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1_700_000_000.0, "2023-11-14T22:13:20Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.5Z"),
        (1_700_000_000.25, "2023-11-14T22:13:20.25Z"),
    ],
    ids=["whole", "half", "quarter"],
)
def test_rfc3339_nano_trims_zeros_like_go(seconds, text):
    assert rfc3339(seconds) == text


def test_rfc3339_nano_has_at_most_nine_digits():
    assert RFC3339.match(rfc3339(1_700_000_000.123456789))


def test_before_the_first_snapshot():
    available, raw = build_payload(None, lambda: 77)
    assert not available
    assert json.loads(raw) == {"available": False, "error": "waiting for the first sample", "response_time": 77}


def test_no_usage_window_yet():
    available, raw = build_payload(fixture_step(None), lambda: 5)
    doc = json.loads(raw)
    assert not available and doc["available"] is False
    assert "usage needs a window" in doc["error"]


@pytest.mark.parametrize(
    ("missing", "source", "error"),
    [
        ("memory", "meminfo", "/proc/meminfo: permission denied"),
        ("host", "host", "netdevice: no interface is up with a global-unicast IPv4 address"),
    ],
    ids=["meminfo", "host"],
)
def test_a_failed_source_is_the_reason_never_a_zero_or_empty_field(tmp_path, missing, source, error):
    snap = replace(windowed_snapshot(tmp_path), **{missing: None}, statuses={source: SourceStatus(False, 0.0, error)})
    available, raw = build_payload(snap, lambda: 5)
    assert not available
    assert json.loads(raw) == {"available": False, "error": error, "response_time": 5}


def test_disks_are_the_filesystems_that_could_be_measured(tmp_path):
    filesystems = (
        Filesystem("/dev/vda", "/", "ext4", False, size_bytes=40960, free_bytes=16384, avail_bytes=12288),
        Filesystem("/dev/vdb", "/data", "xfs", False, error="/data: Permission denied"),
    )
    snap = replace(windowed_snapshot(tmp_path), filesystems=filesystems)
    doc = check_payload(build_payload(snap, lambda: 1)[1], HOST)
    assert [(d["mount_point"], d["used_bytes"], d["total_bytes"]) for d in doc["status"]["disks"]] == [
        ("/", 24576, 40960)
    ]
    assert doc["status"]["disks"][0]["timestamp"] == doc["status"]["timestamp"]


def test_golden_payload(tmp_path, request):
    """The exact bytes an agent receives for the vm-2cpu fixture one window later (fixed clock and host)."""
    snap = windowed_snapshot(tmp_path, FixedClock())
    mounts = read_filesystems(VM / "proc", VM, fixed_statvfs)
    available, raw = build_payload(replace(snap, filesystems=mounts), lambda: 48_000)
    assert available
    check_payload(raw, HOST)
    path = GOLDEN / "vm-2cpu-sysmon-vm.json"
    text = json.dumps(json.loads(raw), indent=1) + "\n"
    if request.config.getoption("--update-golden"):
        path.write_bytes(raw + b"\n")
    assert raw + b"\n" == path.read_bytes(), f"payload changed; review and run make golden ({path}); pretty:\n{text}"


def test_a_bind_mounted_directory_is_one_disk(tmp_path):
    """The vm-2cpu host mounts /dev/vda at / and binds /run/netns onto itself: ServiceRadar gets one disk."""
    from exporter.sources.mounts import read_mounts

    assert [m.mount_point for m in read_mounts(VM / "proc") if m.device == "/dev/vda"] == ["/", "/run/netns"]
    snap = replace(windowed_snapshot(tmp_path), filesystems=read_filesystems(VM / "proc", VM, fixed_statvfs))
    doc = check_payload(build_payload(snap, lambda: 1)[1], HOST)
    assert [d["mount_point"] for d in doc["status"]["disks"]] == ["/"]

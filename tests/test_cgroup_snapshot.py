import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from exporter.collector import CachedFamilies, Renderer, default_collectors
from exporter.collector.exposition import Piece
from exporter.snapshot import CgroupSources, CpuSources, Snapshot, take_cgroup_snapshot, take_snapshot
from exporter.sources.cgroup import CgroupLimits
from tests.helpers import FIXTURES, ROOT, parse_exposition

V2 = FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup"
APP = (
    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f0d3c7e_8a6b_4c1e_9d2f_1b3a4c5d6e7f.slice"
    "/cri-containerd-0d6a51c2e7b94f0a8c3d2b1e4f5a6978c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5.scope"
)


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 100.0


def cgroups(root: Path, **limits) -> CgroupSources:  # type: ignore[no-untyped-def]
    return CgroupSources(root, CgroupLimits(**limits), 100)


def test_cpu_and_cgroup_steps_keep_each_others_part():
    cpu = CpuSources(FIXTURES / "vm-2cpu" / "proc", FIXTURES / "vm-2cpu" / "sys", 100, frozenset({"cpu", "meminfo"}))
    s1 = take_snapshot(None, cpu, FixedClock())
    s2 = take_cgroup_snapshot(s1, cgroups(V2), FixedClock())
    s3 = take_snapshot(s2, cpu, FixedClock())
    assert s3.cgroups is s2.cgroups and s3.cgroups is not None and len(s3.cgroups.stats) == 14
    assert s3.statuses["cgroup"].success and s3.statuses["cpu"].success and s3.statuses["meminfo"].success
    assert s2.cpu_seconds == s1.cpu_seconds and s2.memory == s1.memory


def test_missing_cgroupfs_fails_the_source(tmp_path):
    snap = take_cgroup_snapshot(None, cgroups(tmp_path / "nowhere"), FixedClock())
    assert snap.cgroups is None
    assert snap.statuses["cgroup"].error == f"{tmp_path}/nowhere: missing"


def test_garbage_file_logged_once_others_still_report_then_recovery(tmp_path, caplog):
    root = tmp_path / "cg"
    shutil.copytree(V2, root)
    events = root / APP.lstrip("/") / "memory.events"
    good = events.read_text()
    events.write_text("this is not a cgroup file\n")
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    snap: Snapshot | None = None
    for _ in range(3):
        snap = take_cgroup_snapshot(snap, cgroups(root), FixedClock())
    assert snap is not None and snap.cgroups is not None
    status = snap.statuses["cgroup"]
    assert not status.success
    assert status.error == f"{events}:1: expected '<key> <integer>', got 'this is not a cgroup file'"
    m = parse_exposition(Renderer(default_collectors("t"))(snap).body(False, False)[0].decode())
    assert len(m["sysmon_cgroup_cpu_usage_seconds_total"]) == 14  # every cgroup, the damaged one too
    assert (("cgroup", APP), ("event", "oom_kill")) not in m["sysmon_cgroup_memory_events_total"]
    assert m["sysmon_source_success"][(("source", "cgroup"),)] == 0.0
    events.write_text(good)
    for _ in range(2):
        snap = take_cgroup_snapshot(snap, cgroups(root), FixedClock())
    assert snap.statuses["cgroup"].success
    assert [r.getMessage() for r in caplog.records] == [
        f"cgroup file failed: {events}:1: expected '<key> <integer>', got 'this is not a cgroup file'",
        "source cgroup recovered",
    ]


def test_dropped_cgroups_counted_and_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    snap: Snapshot | None = None
    for _ in range(3):
        snap = take_cgroup_snapshot(snap, cgroups(V2, max_count=10), FixedClock())
    assert snap is not None and snap.cgroups is not None and snap.cgroups.dropped == 4
    m = parse_exposition(Renderer(default_collectors("t"))(snap).body(False, False)[0].decode())
    assert m["sysmon_cgroup_dropped"][()] == 4.0
    assert len(m["sysmon_cgroup_memory_usage_bytes"]) == 9  # 10 cgroups, the root has no memory.current
    assert snap.statuses["cgroup"].success
    snap = take_cgroup_snapshot(snap, cgroups(V2), FixedClock())
    assert [r.getMessage() for r in caplog.records] == [
        "4 cgroups beyond --cgroup.max-count=10 are not exported (the deepest first); "
        "raise --cgroup.max-count or narrow --cgroup.include",
        "every cgroup is exported again (within --cgroup.max-count=1000)",
    ]


def test_cpu_steps_reuse_the_cgroup_bytes():
    calls = []

    def render(snap: Snapshot) -> list[Piece]:
        calls.append(snap.cgroups)
        return [Piece(b"# HELP x text\n", b"# HELP x om\n", b"x 1.0\n")]

    renderer = Renderer([], cached=[CachedFamilies(lambda s: s.cgroups, render)])
    cpu = CpuSources(FIXTURES / "vm-2cpu" / "proc", FIXTURES / "vm-2cpu" / "sys", 100, frozenset({"cpu"}))
    s1 = take_cgroup_snapshot(None, cgroups(V2), FixedClock())
    renderer(s1)
    s2 = take_snapshot(s1, cpu, FixedClock())
    exposition = renderer(s2)
    assert calls == [s1.cgroups]
    assert exposition.body(True, False)[0] == b"# HELP x om\nx 1.0\n# EOF\n"
    assert exposition.body(False, False)[0] == b"# HELP x text\nx 1.0\n"
    renderer(take_cgroup_snapshot(s2, cgroups(V2), FixedClock()))
    assert len(calls) == 2


def test_unreadable_file_fails_that_file_only():
    """EACCES for real: as root the walk runs in a child that dropped to nobody."""
    base = Path(tempfile.mkdtemp(prefix="sysmon-cgroup-eacces-"))
    try:
        base.chmod(0o755)
        root = base / "cg"
        shutil.copytree(V2, root)
        (root / APP.lstrip("/") / "pids.max").chmod(0)
        (root / "system.slice" / "kubelet.service").chmod(0o600)  # a directory it cannot list
        script = (
            "import json; from pathlib import Path; from exporter.snapshot import CgroupSources, take_cgroup_snapshot,"
            " SystemClock; from exporter.sources.cgroup import CgroupLimits\n"
            f"s = take_cgroup_snapshot(None, CgroupSources(Path({str(root)!r}), CgroupLimits(), 100), SystemClock())\n"
            "print(json.dumps({'status': [s.statuses['cgroup'].success, s.statuses['cgroup'].error],"
            " 'errors': s.cgroups.errors, 'cgroups': sorted(s.cgroups.stats),"
            f" 'app_pids_current': s.cgroups.stats[{APP!r}].pids_current}}))\n"
        )
        cmd = [sys.executable, "-c", script]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        out = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    finally:
        shutil.rmtree(base)
    result = json.loads(out.stdout)
    pids_max = f"{root}{APP}/pids.max"
    kubelet = f"{root}/system.slice/kubelet.service"
    assert result["errors"] == {kubelet: f"{kubelet}: Permission denied", pids_max: f"{pids_max}: Permission denied"}
    assert result["status"] == [False, f"{pids_max}: Permission denied (and 1 more)"]
    assert len(result["cgroups"]) == 13 and APP in result["cgroups"]
    assert result["app_pids_current"] == 27


def test_directory_names_that_are_not_utf8_are_rendered_not_fatal(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2, root)
    odd = os.path.join(os.fsencode(root / "system.slice"), b"bad\xff\"name")
    os.mkdir(odd)
    with open(os.path.join(odd, b"pids.current"), "w") as f:
        f.write("4\n")
    snap = take_cgroup_snapshot(None, cgroups(root), FixedClock())
    exposition = Renderer(default_collectors("t"))(snap)
    m = parse_exposition(exposition.body(False, False)[0].decode())
    assert m["sysmon_cgroup_pids_current"][(("cgroup", '/system.slice/bad\ufffd"name'),)] == 4.0
    assert snap.statuses["cgroup"].success



def test_the_exporter_gives_the_cgroup_walk_its_share_of_inotify_watches(tmp_path):
    from exporter.app import build_sampler
    from exporter.config import load

    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "vm-2cpu" / "proc", proc)
    (proc / "sys" / "fs" / "inotify").mkdir(parents=True)
    (proc / "sys" / "fs" / "inotify" / "max_user_watches").write_text("800\n")
    sys_ = FIXTURES / "vm-2cpu" / "sys"
    config = load([f"--path.procfs={proc}", f"--path.sysfs={sys_}", f"--path.cgroupfs={V2}", "--no-collector.perf"], {})
    readers = CpuSources(config.roots.procfs, config.roots.sysfs, 100, config.collectors)
    sampler = build_sampler(config, readers, None)
    (job,) = [j for j in sampler._jobs if j.name == "cgroup"]
    assert job.step.keywords["readers"].memo.max_watches == 100

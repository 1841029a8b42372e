"""cgroups on this machine's kernel (hybrid: v1 controllers and cgroup2 at unified/), read by the real exporter.

Each test makes its own cgroups, named with this process's pid, and removes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.cgroup import (
    WRITTEN_ONLY,
    CgroupLimits,
    CgroupMemo,
    detect_layout,
    read_cgroups,
    read_found,
    walk,
)
from tests.helpers import (
    FIXTURES,
    ROOT,
    opened_relative,
    parse_exposition,
    promql,
    remove_cgroup,
    require_root,
    root_block_device,
    run_exporter,
    run_prometheus,
    wait_until,
)

pytestmark = pytest.mark.live

CGROUPFS = Path("/sys/fs/cgroup")
TAG = f"sysmon-test-{os.getpid()}"


def require_hierarchy(path: Path) -> None:
    require_root()
    if not (path / "cgroup.procs").exists():
        pytest.skip(f"{path} is not a mounted cgroup hierarchy on this machine")


@contextlib.contextmanager
def cgroup(path: Path) -> Iterator[Path]:
    """A fresh cgroup directory; on exit its processes go back to the parent and it is removed."""
    path.mkdir()
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, OSError):
                (path.parent / "cgroup.procs").write_text(pid)
        remove_cgroup(path)


def run_in(cg: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Runs Python ``code`` in a child that first moves itself into ``cg``."""
    prelude = f"import os; open({str(cg / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120)


def scrape_until(exp, name: str, labels: tuple[tuple[str, str], ...]) -> float:  # type: ignore[no-untyped-def]
    def value() -> float | None:
        return parse_exposition(exp.metrics()).get(name, {}).get(labels)

    wait_until(lambda: value() is not None, what=f"{name}{dict(labels)}")
    result = value()
    assert result is not None
    return result


def exporter_args(include: str) -> list[str]:
    return ["--cgroup.interval=100ms", f"--cgroup.include={include}", "--no-collector.perf"]


def test_v1_memory_limit_oom_kill_is_counted(tmp_path):
    require_hierarchy(CGROUPFS / "memory")
    with cgroup(CGROUPFS / "memory" / f"{TAG}-oom") as cg:
        (cg / "memory.limit_in_bytes").write_text(str(32 << 20))
        child = run_in(cg, "b = b'x' * (256 << 20)\n")  # touches every page: far past the limit
        assert child.returncode == -9, child.stderr
        with run_exporter(exporter_args(f"^/{TAG}-oom$"), tmp_path) as exp:
            path = (("cgroup", f"/{TAG}-oom"),)
            assert scrape_until(exp, "sysmon_cgroup_memory_events_total", (*path, ("event", "oom_kill"))) >= 1
            m = parse_exposition(exp.metrics())
    assert m["sysmon_cgroup_memory_limit_bytes"][path] == 32 << 20
    assert m["sysmon_cgroup_memory_events_total"][(*path, ("event", "max"))] >= 1  # memory.failcnt
    assert m["sysmon_source_success"][(("source", "cgroup"),)] == 1.0


def test_v1_pids_max_refused_forks_are_counted(tmp_path):
    require_hierarchy(CGROUPFS / "pids")
    with cgroup(CGROUPFS / "pids" / f"{TAG}-pids") as cg:
        (cg / "pids.max").write_text("3")
        child = run_in(
            cg,
            "import time\n"
            "refused = 0\n"
            "kids = []\n"
            "for _ in range(5):\n"
            "    try:\n"
            "        pid = os.fork()\n"
            "    except BlockingIOError:\n"
            "        refused += 1\n"
            "        continue\n"
            "    if pid == 0:\n"
            "        time.sleep(0.5)\n"
            "        os._exit(0)\n"
            "    kids.append(pid)\n"
            "for pid in kids:\n"
            "    os.waitpid(pid, 0)\n"
            "print(refused)\n",
        )
        assert child.returncode == 0, child.stderr
        refused = int(child.stdout)
        assert refused >= 1
        with run_exporter(exporter_args(f"^/{TAG}-pids$"), tmp_path) as exp:
            path = (("cgroup", f"/{TAG}-pids"),)
            events = scrape_until(exp, "sysmon_cgroup_pids_events_total", (*path, ("event", "max")))
            m = parse_exposition(exp.metrics())
    assert events == refused
    assert m["sysmon_cgroup_pids_limit"][path] == 3


def test_v2_cpu_burned_in_unified_is_counted(tmp_path):
    require_hierarchy(CGROUPFS / "unified")
    with cgroup(CGROUPFS / "unified" / f"{TAG}-cpu") as cg:
        child = run_in(cg, "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8:\n    pass\n")
        assert child.returncode == 0, child.stderr
        with run_exporter(exporter_args(f"^/{TAG}-cpu$"), tmp_path) as exp:
            path = (("cgroup", f"/{TAG}-cpu"),)
            usage = scrape_until(exp, "sysmon_cgroup_cpu_usage_seconds_total", path)
            m = parse_exposition(exp.metrics())
    assert usage > 0.5
    # cpu.stat user/system are scaled so that they add up to usage (kernel/sched/cputime.c cputime_adjust)
    user_and_system = (
        m["sysmon_cgroup_cpu_user_seconds_total"][path] + m["sysmon_cgroup_cpu_system_seconds_total"][path]
    )
    assert user_and_system == pytest.approx(usage, rel=0.05)
    assert ("cgroup", f"/{TAG}-cpu") in {k[0] for k in m["sysmon_cgroup_pressure_cpu_seconds_total"]}


def test_cgroup_removed_during_the_walk_is_skipped_and_the_others_report():
    require_hierarchy(CGROUPFS / "pids")
    layout = detect_layout(CGROUPFS)
    limits = CgroupLimits(include=re.compile(f"^/{TAG}-(gone|stays)$"))
    with cgroup(CGROUPFS / "pids" / f"{TAG}-stays"):
        gone = CGROUPFS / "pids" / f"{TAG}-gone"
        gone.mkdir()
        try:
            walked = walk(layout, limits)
        finally:
            gone.rmdir()
        errors: dict[str, str] = {}
        stats = read_found(walked.found, 100, errors)
    assert sorted(f.path for f in walked.found) == [f"/{TAG}-gone", f"/{TAG}-stays"]
    assert errors == {}
    assert list(stats) == [f"/{TAG}-stays"] and stats[f"/{TAG}-stays"].pids_current == 0


def test_v1_limits_written_on_this_kernel_are_seen_and_the_rest_are_not_read_again(monkeypatch):
    """cgroupfs raises IN_MODIFY for a write and nothing for an rmdir (exporter.sources.dirwatch)."""
    for controller in ("pids", "memory", "cpu"):
        require_hierarchy(CGROUPFS / controller)
    name = f"{TAG}-limits"
    limits = CgroupLimits(include=re.compile(f"^/{name}$"))
    dirs = [CGROUPFS / c / name for c in ("pids", "memory", "cpu")]

    def set_limits(pids: int, memory: int, quota: int) -> None:
        (dirs[0] / "pids.max").write_text(str(pids))
        (dirs[1] / "memory.limit_in_bytes").write_text(str(memory))
        (dirs[2] / "cpu.cfs_quota_us").write_text(str(quota))

    def limits_now(memo: CgroupMemo) -> tuple[int | None, int | None, float | None]:
        stats = read_cgroups(CGROUPFS, limits, 100, memo=memo).stats[f"/{name}"]
        return stats.pids_limit, stats.memory_limit_bytes, stats.cpu_limit_cores

    memo = CgroupMemo()
    with contextlib.ExitStack() as stack:
        for d in dirs:
            stack.enter_context(cgroup(d))
        set_limits(100, 512 << 20, 50000)
        assert limits_now(memo) == (100, 512 << 20, 0.5)
        assert memo.watch is not None, "cgroupfs is a filesystem the watch takes"
        opened = opened_relative(monkeypatch)
        assert limits_now(memo) == (100, 512 << 20, 0.5)
        assert "pids.current" in opened and not WRITTEN_ONLY & set(opened)
        set_limits(77, 256 << 20, 25000)
        assert limits_now(memo) == (77, 256 << 20, 0.25)
        assert {"pids.max", "memory.limit_in_bytes", "cpu.cfs_quota_us"} <= set(opened)
        opened.clear()
        assert limits_now(memo) == (77, 256 << 20, 0.25) and not WRITTEN_ONLY & set(opened)
        remove_cgroup(dirs[0])  # made again under its name, with another limit: no event comes for it
        dirs[0].mkdir()
        (dirs[0] / "pids.max").write_text("33")
        assert limits_now(memo)[0] == 33
        # a child made and removed: events in the parent's directory, so its listing is taken again
        below = re.compile(f"^/{name}(/child)?$")
        assert list(read_cgroups(CGROUPFS, CgroupLimits(include=below), 100, memo=memo).stats) == [f"/{name}"]
        with cgroup(dirs[0] / "child"):
            (dirs[0] / "child" / "pids.max").write_text("5")
            tree = read_cgroups(CGROUPFS, CgroupLimits(include=below), 100, memo=memo)
            assert tree.stats[f"/{name}/child"].pids_limit == 5
        tree = read_cgroups(CGROUPFS, CgroupLimits(include=below), 100, memo=memo)
        assert list(tree.stats) == [f"/{name}"] and tree.errors == {}


def test_v2_children_made_and_removed_on_this_kernel_are_seen_through_the_watch():
    """cgroup2 raises IN_CREATE and IN_DELETE in a cgroup's directory for a child's mkdir and rmdir."""
    require_hierarchy(CGROUPFS / "unified")
    name = f"{TAG}-v2"
    below = CgroupLimits(include=re.compile(f"^/{name}(/child)?$"))
    memo = CgroupMemo()
    with cgroup(CGROUPFS / "unified" / name) as cg:
        for _ in range(2):  # the second walk takes the listing from the watch
            assert list(read_cgroups(CGROUPFS, below, 100, memo=memo).stats) == [f"/{name}"]
        assert memo.watch is not None and memo.watch.unchanged(str(cg))
        with cgroup(cg / "child"):
            assert list(read_cgroups(CGROUPFS, below, 100, memo=memo).stats) == [f"/{name}", f"/{name}/child"]
        tree = read_cgroups(CGROUPFS, below, 100, memo=memo)
        assert list(tree.stats) == [f"/{name}"] and tree.errors == {}


def test_garbage_and_unreadable_files_fail_alone_in_the_running_exporter(tmp_path):
    """The real exporter, as nobody (EACCES needs a non-root reader), on a copy of the v2 node with two bad files."""
    require_root()
    base = Path(tempfile.mkdtemp(prefix="sysmon-cgroup-live-"))
    try:
        base.chmod(0o755)
        root = base / "cg"
        shutil.copytree(FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup", root)
        garbage = root / "system.slice" / "kubelet.service" / "memory.events"
        garbage.write_text("\x00\x01garbage\n")
        unreadable = root / "init.scope" / "cpu.stat"
        unreadable.chmod(0)
        args = ["--cgroup.interval=100ms", f"--path.cgroupfs={root}", "--no-collector.perf"]
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        with run_exporter(args, tmp_path, env={"PYTHONPATH": str(ROOT)}, wrapper=nobody) as exp:
            scrape_until(exp, "sysmon_cgroup_dropped", ())
            wait_until(lambda: exp.stderr().count("cgroup file failed") == 2, what="two failure lines")
            first = parse_exposition(exp.metrics())
            wait_until(
                lambda: (
                    parse_exposition(exp.metrics())["sysmon_source_duration_seconds"]
                    != first["sysmon_source_duration_seconds"]
                ),
                what="another cgroup sample",
            )
            m = parse_exposition(exp.metrics())
            log = exp.stderr()
            assert exp.proc.poll() is None
    finally:
        shutil.rmtree(base)
    assert m["sysmon_source_success"][(("source", "cgroup"),)] == 0.0
    assert m["sysmon_source_success"][(("source", "cpu"),)] == 1.0
    assert len(m["sysmon_cgroup_memory_usage_bytes"]) == 13  # every cgroup but the root
    assert (("cgroup", "/init.scope"),) not in m["sysmon_cgroup_cpu_usage_seconds_total"]
    assert m["sysmon_cgroup_memory_usage_bytes"][(("cgroup", "/init.scope"),)] == 11771904
    assert m["sysmon_cgroup_pids_current"][(("cgroup", "/system.slice/kubelet.service"),)] == 17
    assert log.count(f"cgroup file failed: {unreadable}: Permission denied") == 1
    assert log.count(f"cgroup file failed: {garbage}:1: expected '<key> <integer>'") == 1


def test_walk_bounds_reach_the_running_exporter(tmp_path):
    """Each bound flag changes what the real exporter exports from the v2 node: drop any one and the set differs."""
    args = [
        f"--path.cgroupfs={FIXTURES / 'k8s-node-v2' / 'sys' / 'fs' / 'cgroup'}",
        "--cgroup.interval=100ms",
        "--cgroup.max-depth=3",  # no container scopes
        "--cgroup.include=^/kubepods",
        "--cgroup.exclude=besteffort",
        "--cgroup.max-count=2",  # of /kubepods.slice, the burstable slice and its pod: the pod is dropped
        "--no-collector.perf",
    ]
    with run_exporter(args, tmp_path) as exp:
        dropped = scrape_until(exp, "sysmon_cgroup_dropped", ())
        m = parse_exposition(exp.metrics())
    exported = {value for name, series in m.items() for labels in series for key, value in labels if key == "cgroup"}
    assert exported == {"/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice"}
    assert dropped == 1


def test_prometheus_scrapes_the_cgroup_series_and_joins_on_info(tmp_path):
    """Real Prometheus (gzip, OpenMetrics) over the v2 node fixture: the README's join gives the pod UID."""
    args = ["--cgroup.interval=1s", f"--path.cgroupfs={FIXTURES / 'k8s-node-v2' / 'sys' / 'fs' / 'cgroup'}"]
    query = (
        '(sysmon_cgroup_memory_events_total{event="oom_kill"} > 0)'
        ' * on (instance, cgroup) group_left (pod_uid) sysmon_cgroup_info{container_id!=""}'
    )
    with (
        run_exporter([*args, "--no-collector.perf"], tmp_path) as exp,
        run_prometheus([f"127.0.0.1:{exp.port}"], tmp_path) as prom,
    ):
        result = wait_until(lambda: promql(prom, query), timeout=30, what=query)
        up = promql(prom, "up")
    assert [(r["metric"]["pod_uid"], r["value"][1]) for r in result] == [("5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f", "2")]
    assert [r["value"][1] for r in up] == ["1"]


KUBE_POD_INFO = (
    "# HELP kube_pod_info Information about pod.\n"
    "# TYPE kube_pod_info gauge\n"
    'kube_pod_info{namespace="shop",pod="checkout-7d9f8c6b5-x2x9q",uid="5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f",'
    'node="node-1",created_by_kind="ReplicaSet"} 1\n'
    'kube_pod_info{namespace="batch",pod="report-28711230-kq2lz",uid="c3a1e2f4-0b9d-4e8f-a7c6-5d4e3f2a1b0c",'
    'node="node-1",created_by_kind="Job"} 1\n'
    'kube_pod_info{namespace="shop",pod="cart-5c8d7f6b9-p4m2n",uid="0a0b0c0d-1111-2222-3333-444455556666",'
    'node="node-2",created_by_kind="ReplicaSet"} 1\n'
)


@contextlib.contextmanager
def static_exporter(body: str) -> Iterator[int]:
    """A loopback HTTP server answering every GET with ``body`` as text exposition (kube-state-metrics stand-in)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def readme_query(after: str) -> str:
    """The first ```promql block after the sentence ``after`` in README.md."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```promql\n", text.index(after)) + len("```promql\n")
    return text[start : text.index("```", start)]


def test_prometheus_runs_the_readme_kube_state_metrics_join(tmp_path):
    """Real Prometheus, the exporter on the v2 node and a static kube_pod_info: pods get namespace and name."""
    query = readme_query("Working set per pod by namespace and name")
    args = ["--cgroup.interval=1s", f"--path.cgroupfs={FIXTURES / 'k8s-node-v2' / 'sys' / 'fs' / 'cgroup'}"]
    with (
        run_exporter([*args, "--no-collector.perf"], tmp_path) as exp,
        static_exporter(KUBE_POD_INFO) as ksm,
        run_prometheus([f"127.0.0.1:{exp.port}", f"127.0.0.1:{ksm}"], tmp_path) as prom,
    ):
        result = wait_until(lambda: len(promql(prom, query)) == 2 and promql(prom, query), timeout=30, what=query)
        m = parse_exposition(exp.metrics())
    got = {(r["metric"]["namespace"], r["metric"]["pod"]): float(r["value"][1]) for r in result}
    pods = {
        (("cgroup", labels[0][1]),): dict(labels)["pod_uid"]
        for labels in m["sysmon_cgroup_info"]
        if dict(labels)["container_id"] == ""
    }
    by_uid = {uid: m["sysmon_cgroup_memory_working_set_bytes"][cg] for cg, uid in pods.items()}
    assert got == {
        ("shop", "checkout-7d9f8c6b5-x2x9q"): by_uid["5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f"],
        ("batch", "report-28711230-kq2lz"): by_uid["c3a1e2f4-0b9d-4e8f-a7c6-5d4e3f2a1b0c"],
    }
    assert all(r["metric"]["cgroup"].endswith(".slice") for r in result)


@contextlib.contextmanager
def holding(cg: Path, code: str) -> Iterator[subprocess.Popen[str]]:
    """A child in ``cg`` that runs ``code``, prints "ready" and stays until its stdin closes."""
    prelude = f"import os, sys; open({str(cg / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
    tail = "\nprint('ready', flush=True)\nsys.stdin.read()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", prelude + code + tail], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", "the child did not start"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def kernel_memory(cg: Path) -> dict[str, int]:
    """The kernel's own figures, by the documented formulas (cAdvisor's for the working set)."""
    stat = dict(line.split() for line in (cg / "memory.stat").read_text().splitlines())
    usage = int((cg / "memory.usage_in_bytes").read_text())
    return {
        "working_set": max(usage - int(stat["total_inactive_file"]), 0),
        "rss": int(stat["total_rss"]),
        "cache": int(stat["total_cache"]),
    }


def test_v1_working_set_rss_and_cache_match_the_kernel(tmp_path):
    require_hierarchy(CGROUPFS / "memory")
    scratch = Path(tempfile.mkdtemp(prefix="sysmon-cgroup-live-", dir="/var/tmp"))  # a disk filesystem: page cache
    try:
        with (
            cgroup(CGROUPFS / "memory" / f"{TAG}-mem") as cg,
            holding(
                cg,
                "anon = b'a' * (64 << 20)\n"
                f"with open({str(scratch / 'cache')!r}, 'wb') as f:\n"
                "    f.write(b'c' * (32 << 20))\n",
            ),
            run_exporter(exporter_args(f"^/{TAG}-mem$"), tmp_path) as exp,
        ):
            path = (("cgroup", f"/{TAG}-mem"),)
            scrape_until(exp, "sysmon_cgroup_memory_working_set_bytes", path)
            before = kernel_memory(cg)
            m = parse_exposition(exp.metrics())
            after = kernel_memory(cg)
    finally:
        shutil.rmtree(scratch)
    ours = {
        "working_set": m["sysmon_cgroup_memory_working_set_bytes"][path],
        "rss": m["sysmon_cgroup_memory_rss_bytes"][path],
        "cache": m["sysmon_cgroup_memory_cache_bytes"][path],
    }
    for key, value in ours.items():
        assert value == pytest.approx(before[key], rel=0.05) or value == pytest.approx(after[key], rel=0.05), key
    assert ours["rss"] >= 64 << 20 and ours["cache"] >= 32 << 20
    assert ours["working_set"] >= 64 << 20


def test_v1_cpu_quota_of_half_a_core_shows_half(tmp_path):
    require_hierarchy(CGROUPFS / "cpu")
    with cgroup(CGROUPFS / "cpu" / f"{TAG}-quota") as cg:
        (cg / "cpu.cfs_period_us").write_text("100000")
        (cg / "cpu.cfs_quota_us").write_text("50000")
        (cg / "cpu.shares").write_text("512")
        with run_exporter(exporter_args(f"^/{TAG}-quota$"), tmp_path) as exp:
            path = (("cgroup", f"/{TAG}-quota"),)
            limit = scrape_until(exp, "sysmon_cgroup_cpu_limit_cores", path)
            m = parse_exposition(exp.metrics())
            (cg / "cpu.cfs_quota_us").write_text("-1")
            wait_until(
                lambda: path not in parse_exposition(exp.metrics()).get("sysmon_cgroup_cpu_limit_cores", {}),
                what="the limit series to go with the quota",
            )
    assert limit == 0.5
    assert m["sysmon_cgroup_cpu_weight"][path] == 50


def test_v1_o_direct_writes_show_on_the_root_device(tmp_path):
    require_hierarchy(CGROUPFS / "blkio")
    majmin, name = root_block_device()
    scratch = Path(tempfile.mkdtemp(prefix="sysmon-cgroup-live-", dir="/var/tmp"))
    try:
        with cgroup(CGROUPFS / "blkio" / f"{TAG}-io") as cg:
            rule = cg / "blkio.throttle.write_bps_device"
            # blkio.throttle.* counts only once a rule exists on the device: one nothing reaches (1 TiB/s)
            rule.write_text(f"{majmin} {1 << 40}")
            try:
                child = run_in(
                    cg,
                    "import mmap\n"
                    "buf = mmap.mmap(-1, 16 << 20)\n"
                    "buf.write(b'd' * (16 << 20))\n"
                    f"fd = os.open({str(scratch / 'direct')!r}, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)\n"
                    "assert os.write(fd, buf) == 16 << 20\n"
                    "os.close(fd)\n",
                )
                assert child.returncode == 0, child.stderr
                with run_exporter(exporter_args(f"^/{TAG}-io$"), tmp_path) as exp:
                    labels = (("cgroup", f"/{TAG}-io"), ("device", name))
                    written = scrape_until(exp, "sysmon_cgroup_io_write_bytes_total", labels)
                    writes = parse_exposition(exp.metrics())["sysmon_cgroup_io_writes_total"][labels]
            finally:
                rule.write_text(f"{majmin} 0")
    finally:
        shutil.rmtree(scratch)
    assert written >= 16 << 20
    assert writes >= 1

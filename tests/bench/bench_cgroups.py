"""One cgroup cycle (walk + read + parse + render) over a synthetic cgroup v2 tree of 1000 cgroups.

Run: ``python tests/bench/bench_cgroups.py [--count N] [--runs N] [--scrapes N]``. Builds the
tree in a temporary directory laid out like a Kubernetes node on the systemd
driver (kubepods.slice / QoS slices / pod slices / container scopes) with the
files a 6.x kernel writes, then times ``take_cgroup_snapshot`` plus rendering
both exposition formats, as the sampler does each cgroup interval, and prints
the median and the series count, first with the same values each cycle (an idle node), then
with nothing kept from the cycle before (every file parsed, every family written), then
with a tenth of the cgroups' counters rewritten between cycles, then
with every cgroup's counters rewritten between cycles (a busy one). Then it starts the real exporter on the same
tree and times sequential scrapes of /metrics with those series present
(``--scrapes 0`` skips that).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exporter.collector import CachedFamilies, Renderer
from exporter.collector.cgroup import CgroupRenderer
from exporter.snapshot import CgroupSources, SystemClock, take_cgroup_snapshot
from exporter.sources.cgroup import CgroupLimits

PRESSURE = "some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n"


# The 6.x memory.stat keys, in the kernel's order (mm/memcontrol.c memory_stats[], then the events).
MEMORY_STAT_KEYS = [
    line
    for line in (Path(__file__).parents[1] / "fixtures" / "memory-stat-keys.txt").read_text().splitlines()
    if line and not line.startswith("#")
]


def memory_stat(i: int) -> str:
    return "".join(f"{key} {(i * 4096 + n) * 7}\n" for n, key in enumerate(MEMORY_STAT_KEYS))


def write_cgroup(d: Path, i: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "cgroup.procs": "",
        "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
        "memory.events": f"low 0\nhigh 0\nmax {i % 7}\noom {i % 3}\noom_kill {i % 3}\noom_group_kill 0\n",
        "memory.max": "max\n" if i % 2 else f"{268435456 + i}\n",
        "memory.high": "max\n" if i % 4 else f"{250000000 + i}\n",
        "memory.swap.current": f"{(i % 5) * 4096}\n",
        "cpu.max": "max 100000\n" if i % 2 else f"{50000 + i * 100} 100000\n",
        "cpu.weight": f"{1 + i % 200}\n",
        "pids.events": f"max {i % 2}\n",
        "pids.max": "max\n" if i % 3 else "4096\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    write_counters(d, i, 0)


def write_counters(d: Path, i: int, tick: int) -> None:
    """The files whose values move while a cgroup's tasks run: CPU time, memory, I/O, stalls, tasks."""
    t = tick * 1009
    files = {
        "memory.current": f"{1_000_000 + i * 4096 + t * 4096}\n",
        "memory.stat": memory_stat(i + t),
        "io.stat": (
            f"259:0 rbytes={(i + t) * 4096} wbytes={(i + t) * 8192} rios={i + t} wios={2 * (i + t)} dbytes=0 dios=0\n"
            "8:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n"
        ),
        "cpu.stat": (
            f"usage_usec {(i + t) * 1000}\nuser_usec {(i + t) * 600}\nsystem_usec {(i + t) * 400}\nnice_usec 0\n"
            f"core_sched.force_idle_usec 0\nnr_periods {i + t}\nnr_throttled {(i + t) // 10}\n"
            f"throttled_usec {(i + t) * 7}\nnr_bursts 0\nburst_usec 0\n"
        ),
        "pids.current": f"{(i + tick) % 50}\n",
        "cpu.pressure": PRESSURE.format((i + t) * 11, (i + t) * 5),
        "memory.pressure": PRESSURE.format((i + t) * 3, i + t),
        "io.pressure": PRESSURE.format((i + t) * 13, (i + t) * 2),
    }
    for name, text in files.items():
        (d / name).write_text(text)


def build_host(top: Path, count: int) -> tuple[Path, int]:
    """``top``/sys/fs/cgroup with ``count`` cgroups (:func:`build_tree`) and ``top``/sys/dev/block naming
    the devices io.stat lists, as on a host; returns the cgroupfs and how many cgroups were made."""
    for dev, name in (("259:0", "nvme0n1"), ("8:0", "sda")):
        d = top / "sys" / "dev" / "block" / dev
        d.mkdir(parents=True)
        major, minor = dev.split(":")
        (d / "uevent").write_text(f"MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk\n")
    root = top / "sys" / "fs" / "cgroup"
    return root, build_tree(root, count)


def build_tree(root: Path, count: int) -> int:
    """A v2 root, kubepods.slice, 3 QoS slices, pods with 2 containers each, up to ``count`` cgroups."""
    made = 0

    def add(path: Path) -> bool:
        nonlocal made
        if made >= count:
            return False
        write_cgroup(path, made)
        made += 1
        return True

    add(root)
    add(root / "system.slice")
    kube = root / "kubepods.slice"
    add(kube)
    qos = [kube / "kubepods-burstable.slice", kube / "kubepods-besteffort.slice"]
    for q in qos:
        add(q)
    n = 0
    while made < count:
        q = qos[n % 2]
        uid = str(uuid.UUID(int=n)).replace("-", "_")
        pod = q / f"{q.name.removesuffix('.slice')}-pod{uid}.slice"
        add(pod)
        for c in range(2):
            add(pod / f"cri-containerd-{n:032x}{c:032x}.scope")
        n += 1
    return made


def scrape_latency(root: Path, scrapes: int) -> None:
    """p50/p99 of sequential keep-alive scrapes of the real exporter reading ``root`` as its cgroupfs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--path.cgroupfs={root}",
            "--no-collector.perf",
            "--log.level=warn",
        ],
        cwd=repo,
    )
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.request("GET", "/metrics")
                body = conn.getresponse().read()
                if b"sysmon_cgroup_dropped" in body:
                    break
            except OSError:
                conn.close()
            if time.monotonic() > deadline:
                raise SystemExit("the exporter did not serve cgroup series within 30 s")
            time.sleep(0.2)
        prometheus = {
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            "Accept-Encoding": "gzip",
        }
        for label, headers in (("text, identity", {}), ("OpenMetrics, gzip (as Prometheus asks)", prometheus)):
            times = []
            size = 0
            for _ in range(scrapes):
                start = time.perf_counter()
                conn.request("GET", "/metrics", headers=headers)
                size = len(conn.getresponse().read())
                times.append(time.perf_counter() - start)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(
                f"scrape {label}: p50 {statistics.median(times) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms,"
                f" {size} bytes, {scrapes} scrapes"
            )
        # Prometheus scrapes every 15 s or so, so each of its scrapes meets a snapshot nobody
        # has asked for yet: the gzip of the whole body happens on that scrape.
        fresh = []
        for _ in range(8):
            time.sleep(1.1)
            start = time.perf_counter()
            conn.request("GET", "/metrics", headers=prometheus)
            conn.getresponse().read()
            fresh.append(time.perf_counter() - start)
        print(
            f"scrape OpenMetrics, gzip, first scrape of each snapshot: p50 {statistics.median(fresh) * 1000:.2f} ms,"
            f" max {max(fresh) * 1000:.2f} ms, {len(fresh)} scrapes 1.1 s apart"
        )
        with open(f"/proc/{proc.pid}/status") as status:
            rss = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
        print(f"exporter RSS with these series: {int(rss) / 1024:.1f} MiB")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sysmon-bench-cgroup-") as tmp:
        root, made = build_host(Path(tmp), args.count)
        readers = CgroupSources(root, CgroupLimits(max_count=args.count), 100)
        render = Renderer([], cached=[CachedFamilies(lambda s: s.cgroups, CgroupRenderer())])
        clock = SystemClock()
        snap = None
        times = []
        cpu = []  # CPU time of this process: what the cycle costs even when other work shares the CPUs
        for _ in range(args.runs + 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            snap = take_cgroup_snapshot(snap, readers, clock)
            exposition = render(snap)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        times, cpu = times[1:], cpu[1:]  # the first run warms the dentry cache
        text = exposition.body(False, False)[0].decode()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        assert snap.cgroups is not None and len(snap.cgroups.stats) == made, "not every cgroup was read"
        assert snap.statuses["cgroup"].success, snap.statuses["cgroup"].error
        print(f"cgroups: {made}")
        print(f"series: {series}")
        print(
            f"cycle (walk + read + parse + render) median: {statistics.median(times) * 1000:.1f} ms"
            f" (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, {args.runs} runs)"
        )
        print(
            f"cycle CPU time (user + system) median: {statistics.median(cpu) * 1000:.1f} ms (min {min(cpu) * 1000:.1f})"
        )
        # The same cycle with nothing carried over from the last one (no CgroupMemo, no kept families):
        # what the cycle costs when every file is parsed and every family written.
        cold = []
        for _ in range(args.runs):
            fresh = CgroupSources(root, CgroupLimits(max_count=args.count), 100)
            fresh_render = Renderer([], cached=[CachedFamilies(lambda s: s.cgroups, CgroupRenderer())])
            start_cpu = time.process_time()
            fresh_render(take_cgroup_snapshot(snap, fresh, clock))
            cold.append(time.process_time() - start_cpu)
        print(
            "the same cycle with nothing kept from the last one (every file parsed, every family written):"
            f" CPU time median {statistics.median(cold) * 1000:.1f} ms (min {min(cold) * 1000:.1f})"
        )
        step = [0.0]
        start = time.perf_counter()
        for _ in range(args.runs):
            take_cgroup_snapshot(snap, readers, clock)
        step[0] = (time.perf_counter() - start) / args.runs
        print(f"of which walk + read + parse (mean): {step[0] * 1000:.1f} ms")
        # The runs above read the same values each time: the best case, an idle node. Here every
        # cgroup's CPU, memory, I/O, stall and task counters move between cycles, as on a busy node.
        dirs = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
        # A node in between: a tenth of the cgroups (every tenth) with moving counters.
        cpu = []
        for tick in range(1, args.runs + 1):
            for i, d in enumerate(dirs):
                if i % 10 == 0:
                    write_counters(d, i, tick)
            start_cpu = time.process_time()
            snap = take_cgroup_snapshot(snap, readers, clock)
            render(snap)
            cpu.append(time.process_time() - start_cpu)
        print(
            "cycle with a tenth of the cgroups' counters changed since the last one:"
            f" CPU time median {statistics.median(cpu) * 1000:.1f} ms (min {min(cpu) * 1000:.1f})"
        )
        times, cpu = [], []
        for tick in range(1, args.runs + 1):
            for i, d in enumerate(dirs):
                write_counters(d, i, tick)
            start, start_cpu = time.perf_counter(), time.process_time()
            snap = take_cgroup_snapshot(snap, readers, clock)
            render(snap)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(
            "cycle with every cgroup's counters changed since the last one, median:"
            f" {statistics.median(times) * 1000:.1f} ms (min {min(times) * 1000:.1f});"
            f" CPU time median {statistics.median(cpu) * 1000:.1f} ms"
            f" (min {min(cpu) * 1000:.1f})"
        )
        if args.scrapes:
            scrape_latency(root, args.scrapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

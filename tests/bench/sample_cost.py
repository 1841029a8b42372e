"""The cost of a sample: sysmon-exporter against node_exporter under a real Prometheus, in one run.

Parts (``--parts``, all by default):

- ``prometheus``: Debian's prometheus scrapes sysmon-exporter, node_exporter with the
  collectors for the same data and node_exporter as shipped, every 15 s and then every
  1 s (``--intervals``), ``--duration`` seconds each; each process's CPU from
  /proc/PID/stat (utime+stime) as % of a core and as CPU-ms per scrape, and the ratios; then the same
  from each thread's schedstat (nanoseconds, where utime+stime step by clock ticks).
- ``breakdown``: one sample cycle of the default collectors on this host, in this process,
  from the sampler's own timers (each source's status duration), then the read and the
  parse of the text sources apart, the snapshot, the render (text and OpenMetrics) and gzip.
- ``wakeups``: voluntary context switches per second of each idle process, summed over its
  threads (/proc/PID/task/*/status).
- ``rss``: RSS at start, after ``--idle-seconds`` idle (the issue's goal is after 10 min) and
  after a load of sequential gzip scrapes.
- ``latency``: scrape latency of the first scrape of each snapshot (rendered and gzipped for it) and
  of a repeat scrape of the same snapshot, p50 and p99.
- ``imports``: ``python -X importtime -c 'import exporter.app'`` by top-level package, in ms
  (self time summed) and in RSS (VmRSS of a fresh interpreter that imports only that package,
  less that of a bare one).

Run with another tree's interpreter (e.g. ``/work/main/.venv/bin/python tests/bench/sample_cost.py``)
to measure that tree's exporter for a before/after in the same sitting. Not a test: nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# ``exporter`` is this interpreter's install (imported before this tree joins sys.path for tests.*), so
# running this file with another tree's interpreter measures that tree: its breakdown and its processes.
import exporter  # noqa: E402

sys.path.append(str(ROOT))

from exporter.config.values import parse_duration  # noqa: E402
from tests.bench.run import NODE_COLLECTORS, Proc, RawClient, pct, trio  # noqa: E402
from tests.helpers import free_port, wait_until  # noqa: E402

PARTS = ("prometheus", "breakdown", "wakeups", "rss", "imports", "latency")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime+stime of every thread of ``pid`` (the process line of /proc/PID/stat sums them)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def run_seconds(pid: int) -> dict[str, float]:
    """Time on a CPU of each thread of ``pid`` (/proc/PID/task/TID/schedstat, nanoseconds): the same CPU as
    utime+stime without their clock-tick steps (10 ms each, about a scrape's worth at a 15 s cadence)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except FileNotFoundError:  # a thread that ended since the listing
            continue
    return out


def ran_between(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU time between two run_seconds readings (a thread that ended in between is not counted: the
    exporters' threads live as long as they do)."""
    return sum(t - before.get(tid, 0.0) for tid, t in after.items())


def voluntary_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except FileNotFoundError:  # a thread that ended since the listing
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


NAMES = ("sysmon", "node(same)", "node(shipped)")


def header(unit_title: str = "unit") -> None:
    print(f"{'figure':<52} {unit_title:<9} {NAMES[0]:>10} {NAMES[1]:>11} {NAMES[2]:>14} {'/same':>7} {'/shipped':>9}")


def row(name: str, unit: str, values: list[float]) -> None:
    ours, same, shipped = values

    def ratio(theirs: float) -> str:
        return f"{ours / theirs:.2f}" if theirs else "n/a"

    print(
        f"{name:<52} {unit:<9} {ours:>10.3f} {same:>11.3f} {shipped:>14.3f} {ratio(same):>7} {ratio(shipped):>9}",
        flush=True,
    )


@contextmanager
def prometheus(targets: list[Proc], interval: int) -> Iterator[int]:
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("bench: prometheus is not installed (make deps-test installs it)")
    with tempfile.TemporaryDirectory(prefix="sysmon-bench-prom-") as tmp:
        jobs = "".join(
            f"  - job_name: j{i}\n    static_configs:\n      - targets: ['127.0.0.1:{p.port}']\n"
            for i, p in enumerate(targets)
        )
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {interval}s\n  scrape_timeout: {min(interval, 10)}s\nscrape_configs:\n{jobs}"
        )
        port = free_port()
        p = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: _up(port, len(targets)), timeout=60, what="prometheus to scrape every target")
            yield port
        finally:
            p.terminate()
            p.wait(20)


def _query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        result: list[dict[str, object]] = json.load(r)["data"]["result"]
        return result


def _up(port: int, n: int) -> bool:
    try:
        return len([s for s in _query(port, "up == 1")]) == n
    except OSError:
        return False


def _scrapes(port: int, job: int, seconds: float) -> int:
    result = _query(port, f'count_over_time(up{{job="j{job}"}}[{int(seconds)}s])')
    return int(float(result[0]["value"][1])) if result else 0  # type: ignore[index]


def prometheus_part(python: str, args: argparse.Namespace) -> None:
    print(f"\n## a real Prometheus scraping all three; sysmon --sampler.interval={args.sampler_interval}")
    header()
    with trio((f"--sampler.interval={args.sampler_interval}", *args.sysmon_args.split()), python) as procs:
        for interval in args.intervals:
            with prometheus(list(procs), interval) as port:
                c0, r0, t0 = (
                    [cpu_seconds(p.p.pid) for p in procs],
                    [run_seconds(p.p.pid) for p in procs],
                    time.monotonic(),
                )
                time.sleep(args.duration)
                c1, r1, t1 = (
                    [cpu_seconds(p.p.pid) for p in procs],
                    [run_seconds(p.p.pid) for p in procs],
                    time.monotonic(),
                )
                scrapes = [max(1, _scrapes(port, i, t1 - t0)) for i in range(len(procs))]
            used = [b - a for a, b in zip(c0, c1, strict=True)]
            ran = [ran_between(a, b) for a, b in zip(r0, r1, strict=True)]
            row(f"CPU, scraped every {interval}s for {args.duration:g}s", "% core", [u / (t1 - t0) * 100 for u in used])
            row(f"CPU per scrape, every {interval}s", "ms", [u * 1000 / n for u, n in zip(used, scrapes, strict=True)])
            row(f"  the same from schedstat (ns), every {interval}s", "% core", [u / (t1 - t0) * 100 for u in ran])
            row(
                f"  the same from schedstat, per scrape, every {interval}s",
                "ms",
                [u * 1000 / n for u, n in zip(ran, scrapes, strict=True)],
            )
            print(f"{'  (scrapes counted by Prometheus)':<52} {'':<9} " + " ".join(f"{n:>10}" for n in scrapes))
            rss = [p.rss_bytes() / 2**20 for p in procs]
            row(f"RSS after {args.duration:g}s scraped every {interval}s", "MiB", rss)


def latency_part(python: str, args: argparse.Namespace) -> None:
    """Each round waits one sampler interval (so a new snapshot is out), then scrapes twice: the first scrape of
    a snapshot (which has it rendered and gzipped) and a repeat (cached bytes)."""
    print(f"\n## scrape latency, first scrape of each snapshot and a repeat, {args.latency_rounds} rounds (gzip)")
    header()
    interval = parse_duration(args.sampler_interval)
    with trio((f"--sampler.interval={args.sampler_interval}", *args.sysmon_args.split()), python) as procs:
        clients = [RawClient(p.port) for p in procs]
        first: list[list[float]] = [[] for _ in procs]
        repeat: list[list[float]] = [[] for _ in procs]
        for _ in range(args.latency_rounds):
            time.sleep(interval * 1.05)
            for i, client in enumerate(clients):
                for out in (first, repeat):
                    t0 = time.perf_counter()
                    client.get()
                    out[i].append(time.perf_counter() - t0)
        for c in clients:
            c.close()
    for name, values in (("first scrape of a snapshot", first), ("repeat scrape of it", repeat)):
        for q in (50, 99):
            row(f"{name}, p{q}", "ms", [pct(v, q) * 1000 for v in values])


def wakeups_part(python: str, args: argparse.Namespace) -> None:
    print(f"\n## idle, nobody scraping, {args.wakeup_seconds:g}s; sysmon --sampler.interval={args.sampler_interval}")
    header()
    with trio((f"--sampler.interval={args.sampler_interval}", *args.sysmon_args.split()), python) as procs:
        s0, c0, t0 = (
            [voluntary_switches(p.p.pid) for p in procs],
            [cpu_seconds(p.p.pid) for p in procs],
            time.monotonic(),
        )
        time.sleep(args.wakeup_seconds)
        s1, c1, t1 = (
            [voluntary_switches(p.p.pid) for p in procs],
            [cpu_seconds(p.p.pid) for p in procs],
            time.monotonic(),
        )
        row(
            "wakeups (voluntary context switches, all threads)",
            "/s",
            [(b - a) / (t1 - t0) for a, b in zip(s0, s1, strict=True)],
        )
        row("CPU idle", "% core", [(b - a) / (t1 - t0) * 100 for a, b in zip(c0, c1, strict=True)])


def rss_part(python: str, args: argparse.Namespace) -> None:
    print(f"\n## RSS; sysmon --sampler.interval={args.sampler_interval}")
    header()
    with trio((f"--sampler.interval={args.sampler_interval}", *args.sysmon_args.split()), python) as procs:
        row("RSS at start (after the first samples)", "MiB", [p.rss_bytes() / 2**20 for p in procs])
        time.sleep(args.idle_seconds)
        row(f"RSS after {args.idle_seconds:g}s idle", "MiB", [p.rss_bytes() / 2**20 for p in procs])
        clients = [RawClient(p.port) for p in procs]
        end = time.monotonic() + args.load_seconds
        while time.monotonic() < end:
            for c in clients:
                c.get()
        for c in clients:
            c.close()
        row(
            f"RSS after {args.load_seconds:g}s of sequential gzip scrapes",
            "MiB",
            [p.rss_bytes() / 2**20 for p in procs],
        )


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _deadline(config: Any, readers: Any) -> Any:
    """The deadline as build_sampler makes it (a tree older than inline sources: every source on its thread)."""
    from exporter.snapshot import Deadline

    try:
        from exporter.app import own_mounts
        from exporter.snapshot import inline_sources
    except ImportError:
        return Deadline(config.sampler.source_timeout_seconds)
    return Deadline(config.sampler.source_timeout_seconds, inline_sources(readers, own_mounts(config)))


def breakdown_part(args: argparse.Namespace) -> None:
    """One cycle of the default collectors on this host, in this process (this tree's code)."""
    from exporter import __version__
    from exporter.app import open_perf, open_vms
    from exporter.collector import Renderer, default_collectors
    from exporter.collector.exposition import EOF_LINE, join_pieces
    from exporter.collector.gzipped import EMPTY, gzip_body
    from exporter.config import load
    from exporter.snapshot import CpuSources, MountFilter, SystemClock, take_snapshot
    from exporter.sources import read_small
    from exporter.sources.cpuinfo import parse_cpuinfo
    from exporter.sources.loadavg import parse_loadavg
    from exporter.sources.meminfo import parse_meminfo
    from exporter.sources.net_dev import parse_net_dev
    from exporter.sources.stat import parse_stat, user_hz

    config = load([], {})
    runs = args.runs
    print(f"\n## one sample cycle, default collectors, this host, median of {runs} (this tree's code)")
    with open_perf(config) as (perf, perf_error), open_vms(config) as vms:
        readers = CpuSources(
            config.roots.procfs,
            config.roots.sysfs,
            user_hz(),
            config.collectors,
            perf,
            perf_error,
            rootfs=config.roots.rootfs,
            mounts=MountFilter(config.filesystem.mount_points_exclude, config.filesystem.fs_types_exclude),
            host_state=config.roots.host_state,
            vms=vms,
        )
        if hasattr(config.filesystem, "interval_seconds"):  # as build_sampler's readers (older trees: every cycle)
            readers = replace(readers, filesystem_interval_seconds=config.filesystem.interval_seconds)
        clock = SystemClock()
        deadline = _deadline(config, readers)
        snap = take_snapshot(None, readers, clock, deadline)
        durations: dict[str, list[float]] = {}
        cycle: list[float] = []
        cpu: list[float] = []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            snap = take_snapshot(snap, readers, clock, deadline)
            cycle.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            for name, status in snap.statuses.items():
                durations.setdefault(name, []).append(status.duration_seconds)
        # with the app's --filesystem.interval, most cycles carry the last filesystem status (and its duration)
        print(f"{'source (its status duration: read + parse)':<44} {'ms':>8}  status")
        for name, values in sorted(durations.items(), key=lambda kv: -statistics.median(kv[1])):
            status = snap.statuses[name]
            state = "ok" if status.success else f"failed: {status.error[:60]}"
            print(f"{name:<44} {statistics.median(values) * 1000:>8.3f}  {state}")
        procfs = config.roots.procfs
        parsers: dict[str, tuple[Path, Callable[[str], object]]] = {
            "cpu": (procfs / "stat", lambda t: parse_stat(t, user_hz())),
            "meminfo": (procfs / "meminfo", parse_meminfo),
            "loadavg": (procfs / "loadavg", parse_loadavg),
            "cpuinfo": (procfs / "cpuinfo", parse_cpuinfo),
            "network": (procfs / "net" / "dev", parse_net_dev),
        }
        print(f"\n{'text source':<44} {'read ms':>8} {'parse ms':>9}")
        for name, (path, parse) in parsers.items():
            if name not in config.collectors:
                continue
            text = read_small(path)
            read_ms = _median_ms(partial(read_small, path), runs)
            parse_ms = _median_ms(partial(parse, text), runs)
            print(f"{name:<44} {read_ms:>8.3f} {parse_ms:>9.3f}")

        render = Renderer(default_collectors(__version__))
        render(snap)
        pieces: list[object] = []

        def collect() -> None:
            render._collector.snapshot = snap
            pieces[:] = render._writer.pieces(render.registry.collect())
            render._collector.snapshot = None

        collect()
        text, om = join_pieces(pieces)  # type: ignore[arg-type]
        steps = [
            ("snapshot (take_snapshot, wall)", statistics.median(cycle) * 1000),
            ("snapshot (take_snapshot, CPU of this process)", statistics.median(cpu) * 1000),
            ("collect + write pieces (both formats' lines)", _median_ms(collect, runs)),
            ("render text 0.0.4 (join)", _median_ms(lambda: join_pieces(pieces)[0], runs)),  # type: ignore[arg-type]
            ("render OpenMetrics (join)", _median_ms(lambda: join_pieces(pieces)[1] + EOF_LINE, runs)),  # type: ignore[arg-type]
            ("whole render (Renderer.__call__)", _median_ms(lambda: render(snap), runs)),
            ("gzip text", _median_ms(lambda: gzip_body(EMPTY, text), runs)),
            ("gzip OpenMetrics", _median_ms(lambda: gzip_body(EMPTY, om), runs)),
        ]
        print(f"\n{'step':<44} {'ms':>8}")
        for name, ms in steps:
            print(f"{name:<44} {ms:>8.3f}")
        series = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
        print(f"{'exposition size (text)':<44} {len(text):>8} bytes, {series} series")


def imports_part(python: str) -> None:
    print(f"\n## import exporter.app ({python}): self time by top-level package, and RSS of importing it alone")
    err = subprocess.run(
        [python, "-P", "-X", "importtime", "-c", "import exporter.app"], capture_output=True, text=True, check=True
    ).stderr
    by: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (x.strip() for x in line.removeprefix("import time:").split("|"))
        top = name.split(".")[0]
        if top == "exporter":
            top = ".".join(name.split(".")[:2])
        by[top] = by.get(top, 0.0) + int(self_us) / 1000

    def rss_kib(code: str) -> int:
        out = subprocess.run(
            [
                python,
                "-P",  # as above: the interpreter's tree, not the working directory's
                "-c",
                f"{code}\nfor l in open('/proc/self/status'):\n    l.startswith('VmRSS') and print(l.split()[1])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.split()[-1])

    bare = rss_kib("pass")
    total = sum(by.values())
    print(f"{'package':<34} {'self ms':>8} {'share':>6} {'RSS MiB alone':>14}")
    for name, ms in sorted(by.items(), key=lambda kv: -kv[1])[:20]:
        rss = ""
        if ms >= 3:
            rss = f"{(rss_kib(f'import {name}') - bare) / 1024:>14.1f}"
        print(f"{name:<34} {ms:>8.1f} {ms / total:>6.0%} {rss}")
    print(f"{'all':<34} {total:>8.1f}   100% {(rss_kib('import exporter.app') - bare) / 1024:>14.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of each Prometheus scrape cadence")
    ap.add_argument(
        "--intervals",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[15, 1],
        help="Prometheus scrape_interval s",
    )
    ap.add_argument("--sampler-interval", default="1s", help="sysmon's --sampler.interval")
    ap.add_argument("--sysmon-args", default="", help="more flags for sysmon-exporter (e.g. --no-collector.cgroup)")
    ap.add_argument("--wakeup-seconds", type=float, default=60.0)
    ap.add_argument("--idle-seconds", type=float, default=600.0, help="idle time before the second RSS reading")
    ap.add_argument("--load-seconds", type=float, default=10.0)
    ap.add_argument("--latency-rounds", type=int, default=60, help="rounds of the latency part (one interval each)")
    ap.add_argument("--runs", type=int, default=200, help="cycles in the breakdown")
    args = ap.parse_args()
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    tree = Path(exporter.__file__).parent
    print(f"sysmon-exporter: {sys.executable} -m exporter ({tree}); node(same): {' '.join(NODE_COLLECTORS)}")
    if "breakdown" in parts:
        breakdown_part(args)
    if "imports" in parts:
        imports_part(sys.executable)
    if "wakeups" in parts:
        wakeups_part(sys.executable, args)
    if "prometheus" in parts:
        prometheus_part(sys.executable, args)
    if "latency" in parts:
        latency_part(sys.executable, args)
    if "rss" in parts:
        rss_part(sys.executable, args)


if __name__ == "__main__":
    main()

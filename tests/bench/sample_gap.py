"""The sampler's cadence under a gzip scrape flood: the largest gap between consecutive samples.

Starts the real exporter on a synthetic cgroup v2 tree (1,000 cgroups: ~5 MB of
text, ~150 KB gzipped), then polls ``sysmon_last_sample_timestamp_seconds``
every 100 ms, first while idle, then while ``wrk -c64`` floods /metrics with
gzip requests. The gap between two consecutive distinct timestamps is an upper
bound of the real gap (a delayed poll can only miss a sample, never invent one).
Not a test: it prints figures and passes or fails nothing.

    python tests/bench/sample_gap.py [--cgroups 1000] [--seconds 20] [--connections 64]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_cgroups import build_tree  # noqa: E402
from tests.helpers import free_port, wait_until  # noqa: E402

_STAMP = re.compile(rb"^sysmon_last_sample_timestamp_seconds (\S+)$", re.MULTILINE)


def sample_time(conn: http.client.HTTPConnection) -> float:
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    body = resp.read()
    if resp.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    match = _STAMP.search(body)
    assert match, "no sysmon_last_sample_timestamp_seconds"
    return float(match.group(1))


def max_gap(port: int, seconds: float, poll: float = 0.1) -> tuple[float, int]:
    """Largest gap between consecutive distinct sample timestamps seen over ``seconds``, and how many were seen."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    seen: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ts = sample_time(conn)
        if not seen or ts != seen[-1]:
            seen.append(ts)
        time.sleep(poll)
    conn.close()
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    return (max(gaps) if gaps else float("inf")), len(seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cgroups", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--interval", default="1s", help="--sampler.interval")
    args = ap.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("sample_gap: wrk is not installed (make bench installs it)")
    with tempfile.TemporaryDirectory(prefix="sysmon-bench-gap-") as tmp:
        build_tree(Path(tmp), args.cgroups)
        port = free_port()
        argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"]
        argv += [f"--path.cgroupfs={tmp}", f"--sampler.interval={args.interval}", "--no-collector.perf"]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: b"sysmon_cgroup_" in _body(port), timeout=30, what="cgroup series")
            idle_gap, idle_seen = max_gap(port, min(10, args.seconds))
            url = f"http://127.0.0.1:{port}/metrics"
            flood = subprocess.Popen(
                [wrk, "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "-H", "Accept-Encoding: gzip", url],
                stdout=subprocess.PIPE,
                text=True,
            )
            result: dict[str, tuple[float, int]] = {}
            poller = threading.Thread(target=lambda: result.update(flood=max_gap(port, args.seconds - 1)))
            time.sleep(0.5)
            poller.start()
            out, _ = flood.communicate(timeout=args.seconds + 60)
            poller.join()
        finally:
            proc.terminate()
            proc.wait(10)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    flood_gap, flood_seen = result["flood"]
    print(f"{args.cgroups} cgroups, --sampler.interval={args.interval}")
    print(f"idle:  max gap between samples {idle_gap:.2f} s ({idle_seen} samples seen)")
    print(
        f"flood: max gap between samples {flood_gap:.2f} s ({flood_seen} samples seen in {args.seconds - 1} s) "
        f"under wrk -t2 -c{args.connections} -d{args.seconds}s gzip at {rps.group(1) if rps else '?'} req/s"
    )
    return 0


def _body(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read()
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())

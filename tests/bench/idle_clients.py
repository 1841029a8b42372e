"""Connections held, evicted and refused while thousands of idle clients connect to /metrics.

Starts the real exporter with its defaults (--web.max-connections=512,
--web.read-header-timeout=10s), opens ``--clients`` loopback connections that
never send a byte, scrapes while they are held, and prints what the exporter
reports; then closes them all. Loopback only; ends by itself.

    python tests/bench/idle_clients.py [--clients 5000]
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, parse_exposition, wait_until  # noqa: E402


def scrape(port: int) -> tuple[int, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.status, parse_exposition(resp.read().decode())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=5000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients + 256)), hard))
    port = free_port()
    argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}", "--no-collector.perf"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks: list[socket.socket] = []
    try:
        wait_until(lambda: scrape(port)[0] == 200, timeout=30, what="the exporter to serve")
        start = time.monotonic()
        for _ in range(args.clients):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        opened = time.monotonic() - start
        time.sleep(1.5)  # a sample or two after the last connect
        status, series = scrape(port)
        held = series["sysmon_http_connections"][()]
        closed = {reason: v for ((_, reason),), v in series["sysmon_http_connections_closed_total"].items()}
        ok = series["sysmon_source_success"]
        print(f"{args.clients} idle clients connected in {opened:.1f} s; scrape while held: HTTP {status}")
        print(f"held open: {held:g}; closed by the exporter: " + ", ".join(f"{k} {v:g}" for k, v in closed.items()))
        print("sources ok: " + ", ".join(f"{labels[0][1]}={v:g}" for labels, v in sorted(ok.items())))
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

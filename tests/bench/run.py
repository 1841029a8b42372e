"""`make bench`: sysmon-exporter and node_exporter side by side, in one run, on this machine.

Prints each figure for both and the ratio. Not a test: nothing here passes or fails.
Needs Debian's prometheus-node-exporter and wrk (make bench installs them).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench.bench_cgroups import build_host  # noqa: E402
from tests.bench.synthetic import make_cpufreq_host  # noqa: E402
from tests.helpers import free_port, wait_until  # noqa: E402

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
NODE_COLLECTORS = ["--collector.disable-defaults", "--collector.cpu", "--collector.cpufreq", "--collector.meminfo"]


class Proc:
    def __init__(self, name: str, argv: list[str], port: int, tls: ssl.SSLContext | None = None) -> None:
        self.name, self.port, self.tls = name, port, tls
        self.headers = {"Authorization": BENCH_AUTH} if tls is not None else {}
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _status(port, "/metrics", tls) == 200, timeout=20, what=f"{name} to serve")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/metrics"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def _status(port: int, path: str, tls: ssl.SSLContext | None = None) -> int:
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=tls)
    try:
        conn.request("GET", path, headers={"Authorization": BENCH_AUTH} if tls else {})
        return conn.getresponse().status
    finally:
        conn.close()


def sysmon(port: int, *args: str, tls: ssl.SSLContext | None = None, python: str = sys.executable) -> Proc:
    """The exporter under ``python`` (another tree's interpreter gives that tree's exporter: ``-P`` keeps
    the working directory's package out of its path)."""
    argv = [python, "-P", "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}", *args]
    return Proc("sysmon-exporter", argv, port, tls)


def node(port: int, *args: str, tls: ssl.SSLContext | None = None) -> Proc:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        sys.exit("bench: prometheus-node-exporter is not installed (make bench installs it)")
    return Proc("node_exporter", [binary, f"--web.listen-address=127.0.0.1:{port}", *args], port, tls)


@contextmanager
def trio(sysmon_args: tuple[str, ...] = (), python: str = sys.executable) -> Iterator[tuple[Proc, Proc, Proc]]:
    """sysmon-exporter; node_exporter with the collectors for the same data; node_exporter as shipped."""
    procs: list[Proc] = []
    try:
        procs.append(sysmon(free_port(), *sysmon_args, python=python))
        procs.append(node(free_port(), *NODE_COLLECTORS))
        procs.append(node(free_port()))
        time.sleep(1.5)  # a first sample and warm caches
        yield procs[0], procs[1], procs[2]
    finally:
        for p in procs:
            p.stop()


class RawClient:
    """A minimal keep-alive HTTP/1.1 client, so client overhead (http.client parses headers
    with the email package, ~0.1 ms) does not drown the servers' own latency."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, extra: dict[str, str] | None = None) -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls is not None else raw
        headers = "".join(f"{k}: {v}\r\n" for k, v in {**PROMETHEUS_HEADERS, **(extra or {})}.items())
        self.request = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode()
        self.buf = b""
        self.last = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def body(self) -> bytes:
        """One plain scrape's body (for readiness checks)."""
        self.sock.sendall(self.request.replace(b"Accept-Encoding: gzip", b"Accept-Encoding: identity"))
        size = self._read_response()
        body, self.last = self.last, b""
        assert len(body) == size
        self.close()
        return body

    def get(self) -> int:
        """One scrape; returns the body size."""
        self.sock.sendall(self.request)
        return self._read_response()

    def _read_response(self) -> int:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        assert lines[0].split()[1] == b"200", lines[0]
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
        if b"content-length" in fields:
            self.last = self._take(int(fields[b"content-length"]))
            return len(self.last)
        assert fields.get(b"transfer-encoding") == b"chunked", fields
        size = 0
        while True:
            n = int(self._line().split(b";")[0], 16)
            size += len(self._take(n))
            self._take(2)
            if n == 0:
                return size

    def close(self) -> None:
        self.sock.close()


def scrape_latencies(procs: tuple[Proc, ...], rounds: int) -> list[list[float]]:
    """Interleaved sequential scrapes over one keep-alive connection each, as Prometheus scrapes."""
    clients = [RawClient(p.port, p.tls, p.headers) for p in procs]
    out: list[list[float]] = [[] for _ in procs]
    for i in range(rounds + 20):
        for j, client in enumerate(clients):
            t0 = time.perf_counter()
            client.get()
            elapsed = time.perf_counter() - t0
            if i >= 20:  # warm-up
                out[j].append(elapsed)
    for client in clients:
        client.close()
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def wrk_rps(proc: Proc, seconds: int) -> float:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed (make bench installs it)")
    auth = [x for k, v in proc.headers.items() for x in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        [
            wrk,
            "-t2",
            "-c4",
            f"-d{seconds}s",
            "-H",
            f"Accept-Encoding: {PROMETHEUS_HEADERS['Accept-Encoding']}",
            *auth,
            proc.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert m, out
    return float(m.group(1))


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk_latency(proc: Proc, seconds: int) -> tuple[float, float]:
    """p50 and p99 in ms of sequential scrapes from one connection of a C client (wrk -t1 -c1)."""
    headers = [x for k, v in {**PROMETHEUS_HEADERS, **proc.headers}.items() for x in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", *headers, proc.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    assert p50 and p99, out
    return _wrk_ms(p50.group(1)), _wrk_ms(p99.group(1))


def idle_cpu(proc: Proc, seconds: float) -> float:
    c0, t0 = proc.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (proc.cpu_seconds() - c0) / (time.monotonic() - t0)


def sample_cycle_ms(root: Path, runs: int) -> float:
    from exporter.collector import Renderer, default_collectors
    from exporter.snapshot import CpuSources, SystemClock, take_snapshot

    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "cpufreq", "cpuinfo", "meminfo"}))
    render = Renderer(default_collectors("bench"))
    clock = SystemClock()
    snap = take_snapshot(None, readers, clock)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        snap = take_snapshot(snap, readers, clock)
        render(snap)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def node_scrape_ms(root: Path, runs: int) -> float:
    """node_exporter reading the same synthetic tree: its scrape is its sample cycle."""
    port = free_port()
    p = node(port, *NODE_COLLECTORS, f"--path.procfs={root / 'proc'}", f"--path.sysfs={root / 'sys'}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for _ in range(runs + 3):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            times.append(time.perf_counter() - t0)
        conn.close()
        return statistics.median(times[3:]) * 1000
    finally:
        p.stop()


def row(name: str, unit: str, ours: float, same: float, shipped: float | None = None, note: str = "") -> None:
    def ratio(theirs: float | None) -> str:
        if theirs is None:
            return f"{'':>9}"
        return f"{ours / theirs:9.3f}" if theirs else f"{'n/a':>9}"

    third = f"{shipped:>12.3f}" if shipped is not None else f"{'':>12}"
    print(
        f"{name:<46} {unit:<7} {ours:>10.3f} {same:>12.3f} {third} {ratio(same)} {ratio(shipped)}  {note}", flush=True
    )


def latency_rows(procs: tuple[Proc, ...], args: argparse.Namespace, what: str) -> None:
    """p50 and p99 scrape latency: interleaved from a Python client, then sequential from wrk (C)."""
    lat = scrape_latencies(procs, args.rounds)
    seq = [wrk_latency(p, args.wrk_seconds) for p in procs]
    for i, q in enumerate((50, 99)):
        row(
            f"scrape p{q}{what} ({args.rounds} interleaved, Python client)",
            "ms",
            *(pct(x, q) * 1e3 for x in lat),
            note="lower is better",
        )
        row(
            f"scrape p{q}{what} (wrk -c1 -d{args.wrk_seconds}s, C client)",
            "ms",
            *(x[i] for x in seq),
            note="lower is better",
        )


BENCH_AUTH = "Basic " + base64.b64encode(b"bench:bench-password").decode()


@contextmanager
def tls_trio() -> Iterator[tuple[Proc, Proc, Proc]]:
    """sysmon-exporter and node_exporter(same) behind one web config file (TLS 1.3, basic auth), and sysmon plain."""
    import bcrypt
    import trustme

    with tempfile.TemporaryDirectory(prefix="sysmon-bench-tls-") as tmp:
        d = Path(tmp)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(d / "server.crt"))
        cert.private_key_pem.write_to_path(str(d / "server.key"))
        hashed = bcrypt.hashpw(b"bench-password", bcrypt.gensalt(10)).decode()
        (d / "web.yml").write_text(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"basic_auth_users:\n  bench: '{hashed}'\n"
        )
        client = ssl.create_default_context()
        ca.configure_trust(client)
        procs: list[Proc] = []
        try:
            procs.append(sysmon(free_port(), f"--web.config.file={d / 'web.yml'}", tls=client))
            procs.append(node(free_port(), *NODE_COLLECTORS, f"--web.config.file={d / 'web.yml'}", tls=client))
            procs.append(sysmon(free_port()))
            time.sleep(1.5)
            yield procs[0], procs[1], procs[2]
        finally:
            for p in procs:
                p.stop()


def tls_rows(args: argparse.Namespace) -> None:
    """Over TLS with basic auth, the same web config file for both; the third column is sysmon in plain HTTP."""
    print("\n# TLS + basic auth: node(same) reads the same --web.config.file; third column: sysmon plain HTTP")
    with tls_trio() as procs:
        latency_rows(procs, args, " TLS+auth")
        rps = [wrk_rps(p, args.wrk_seconds) for p in procs]
        row(f"scrapes/s TLS+auth (wrk -t2 -c4 -d{args.wrk_seconds}s)", "req/s", *rps, note="higher is better")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=400, help="sequential scrapes per exporter")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--cpus", type=int, default=256, help="CPUs in the synthetic cpufreq host")
    ap.add_argument("--cgroups", type=int, default=1000, help="cgroups in the synthetic v2 tree")
    args = ap.parse_args()

    print(
        "node(same): node_exporter with only cpu, cpufreq, meminfo (the same data); "
        "node(shipped): its default collectors"
    )
    print(
        f"{'figure':<46} {'unit':<7} {'sysmon':>10} {'node(same)':>12} {'node(shipped)':>12} "
        f"{'/same':>9} {'/shipped':>9}"
    )
    with trio() as procs:
        latency_rows(procs, args, "")
        rps = [wrk_rps(p, args.wrk_seconds) for p in procs]
        row(f"scrapes/s (wrk -t2 -c4 -d{args.wrk_seconds}s)", "req/s", *rps, note="higher is better")
        time.sleep(2)
        row("RSS after the load", "MiB", *(p.rss_bytes() / 2**20 for p in procs), note="lower is better")
    tls_rows(args)
    for interval in ("1s", "250ms"):
        with trio((f"--sampler.interval={interval}",)) as procs:
            cpu = [idle_cpu(p, args.idle_seconds) * 100 for p in procs]
            row(
                f"CPU, idle {args.idle_seconds:g}s, --sampler.interval={interval}",
                "% core",
                *cpu,
                note="node_exporter works only when scraped",
            )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_cpufreq_host(root, args.cpus)
        row(
            f"one sample cycle, synthetic {args.cpus}-CPU cpufreq host",
            "ms",
            sample_cycle_ms(root, 50),
            node_scrape_ms(root, 50),
            note="node(same): one scrape of the same tree",
        )

    with tempfile.TemporaryDirectory(prefix="sysmon-bench-cgroup-") as tmp:
        cgroupfs, _ = build_host(Path(tmp), args.cgroups)
        with trio((f"--path.cgroupfs={cgroupfs}",)) as procs:
            wait_until(
                lambda: b"sysmon_cgroup_dropped" in RawClient(procs[0].port).body(), timeout=30, what="cgroup series"
            )
            latency_rows(procs, args, f", sysmon with {args.cgroups} cgroups")
            row(
                f"RSS with {args.cgroups} cgroups",
                "MiB",
                *(p.rss_bytes() / 2**20 for p in procs),
                note="lower is better",
            )
    extra = [
        (
            "cgroup cycle (tests/bench/bench_cgroups.py)",
            [sys.executable, str(HERE / "bench_cgroups.py"), f"--count={args.cgroups}", "--scrapes=0"],
        ),
        (
            "max gap between samples under a gzip flood, wrk -c64 (tests/bench/sample_gap.py)",
            [sys.executable, str(HERE / "sample_gap.py"), f"--cgroups={args.cgroups}", "--connections=64"],
        ),
        (
            "5,000 idle clients: connections held, evicted, refused (tests/bench/idle_clients.py)",
            [sys.executable, str(HERE / "idle_clients.py"), "--clients=5000"],
        ),
        (
            "vm source cycle: 50 QEMU VMs of 8 vCPUs among 2,000 processes (tests/bench/bench_vm.py)",
            [sys.executable, str(HERE / "bench_vm.py"), "--runs=50"],
        ),
        (
            "the cost of a sample: a real Prometheus every 15 s and 1 s, breakdown, wakeups, RSS, imports "
            "(tests/bench/sample_cost.py)",
            [sys.executable, str(HERE / "sample_cost.py")],
        ),
        ("gRPC GetStatus (tests/bench/grpc_latency.py)", [sys.executable, str(HERE / "grpc_latency.py"), "100"]),
        (
            "syscall counter cost (tests/bench/bench_syscalls.py)",
            [sys.executable, str(HERE / "bench_syscalls.py"), "--rounds=5"],
        ),
    ]
    for title, argv in extra:
        print(f"\n## {title}", flush=True)
        subprocess.run(argv, check=False, cwd=ROOT)


if __name__ == "__main__":
    main()

"""--web.max-requests on the real exporter: slow readers hold their slots, the rest get 503 and are counted,
and sampling goes on."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.bench.bench_cgroups import build_tree
from tests.helpers import http_get, parse_exposition, run_exporter, wait_until


def slow_reader(port: int) -> socket.socket:
    """A client that asks for /metrics and reads nothing: its response cannot be sent to the end."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
    return s


def status_of(s: socket.socket) -> int:
    s.settimeout(10)
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed without a status line"
        head += chunk
    return int(head.split()[1])


def test_slow_clients_beyond_max_requests_get_503_and_sampling_goes_on(tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    build_tree(cgroups, 1000)  # a body of several hundred KiB: more than the socket buffers hold
    with run_exporter(["--web.max-requests=2", f"--path.cgroupfs={cgroups}"], tmp_path) as exp:
        wait_until(lambda: len(http_get(exp.url + "/metrics")[1]) > 300_000, what="the cgroup series")
        before = parse_exposition(exp.metrics())
        held = [slow_reader(exp.port) for _ in range(2)]
        # Once the two readers hold both slots, each further scrape is refused at once.
        wait_until(lambda: http_get(exp.url + "/metrics")[0] == 503, what="both slots taken")
        others = [slow_reader(exp.port) for _ in range(8)]
        assert [status_of(s) for s in others] == [503] * 8
        assert http_get(exp.url + "/-/ready")[0] == 200  # the other endpoints and the loop are not held up
        # A sample taken from now on was rendered after every refusal above; one stamped earlier may not be.
        refused_by = time.time()
        for s in held + others:
            s.close()
        stamp = max(before["sysmon_last_sample_timestamp_seconds"][()], refused_by)

        def after() -> dict[str, dict[tuple[tuple[str, str], ...], float]] | None:
            status, body, _ = http_get(exp.url + "/metrics")
            if status != 200:
                return None
            got = parse_exposition(body.decode())
            return got if got["sysmon_last_sample_timestamp_seconds"][()] > stamp else None

        got = wait_until(after, what="a sample taken after the flood")
        # The scrapes refused while waiting for both slots to be taken count too: at least the eight.
        assert got["sysmon_http_requests_limited_total"][()] >= 9
        refused = got["sysmon_http_requests_total"][(("code", "503"), ("handler", "/metrics"))]
        assert refused == got["sysmon_http_requests_limited_total"][()]

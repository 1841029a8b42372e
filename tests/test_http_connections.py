"""The real process bounds its HTTP connections: header deadline, cap with eviction and refusal, quiet bad requests."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

from tests.helpers import parse_exposition, run_exporter, wait_until

ARGS = [
    "--no-collector.perf",
    "--no-collector.cgroup",
    "--no-collector.filesystem",
    "--sampler.interval=100ms",
]


@contextlib.contextmanager
def idle_clients(port: int, n: int) -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(0)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(s: socket.socket) -> bool:
    """True once the server closed ``s`` (whatever it answered before)."""
    try:
        while s.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def counts(exporter) -> dict[str, float]:  # type: ignore[no-untyped-def]
    series = parse_exposition(exporter.metrics())
    out = {reason: v for ((_, reason),), v in series["sysmon_http_connections_closed_total"].items()}
    out["open"] = series["sysmon_http_connections"][()]
    out["bad"] = series["sysmon_http_bad_requests_total"][()]
    return out


def test_connections_that_send_nothing_are_closed_after_the_header_timeout(tmp_path):
    with run_exporter([*ARGS, "--web.read-header-timeout=1s", "--web.idle-timeout=60s"], tmp_path) as exporter:
        with idle_clients(exporter.port, 50) as socks:
            wait_until(lambda: all(closed_by_server(s) for s in socks), what="idle connections to be closed")
        wait_until(lambda: counts(exporter)["header_timeout"] >= 50, what="header timeouts to be counted")


def test_kept_alive_connections_are_closed_after_the_idle_timeout(tmp_path):
    with run_exporter([*ARGS, "--web.read-header-timeout=60s", "--web.idle-timeout=1s"], tmp_path) as exporter:
        with idle_clients(exporter.port, 20) as socks:
            for s in socks:
                s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: all(closed_by_server(s) for s in socks), what="kept-alive connections to be closed")
        assert counts(exporter)["header_timeout"] == 0


def test_beyond_the_cap_idle_connections_make_room_and_a_scrape_still_works(tmp_path):
    args = [*ARGS, "--web.max-connections=20", "--web.read-header-timeout=60s", "--web.idle-timeout=60s"]
    with run_exporter(args, tmp_path) as exporter, idle_clients(exporter.port, 30) as socks:
        # the 10 oldest made room for the 10 newest
        wait_until(lambda: sum(closed_by_server(s) for s in socks) == 10, what="10 evictions")
        assert all(closed_by_server(s) for s in socks[:10])
        # every scrape gets in, evicting one more idle connection
        seen = wait_until(lambda: (c := counts(exporter))["evicted"] >= 11 and c, what="a scrape's own eviction")
        assert seen["refused"] == 0 and seen["open"] <= 20
        assert sum(closed_by_server(s) for s in socks) >= 11


def test_beyond_the_cap_busy_connections_refuse_new_ones_and_count_them(tmp_path):
    args = [*ARGS, "--web.max-connections=20", "--web.read-header-timeout=3s", "--web.idle-timeout=60s"]
    with run_exporter(args, tmp_path) as exporter, idle_clients(exporter.port, 20) as busy:
        # A request whose body never comes keeps its connection busy (the handler's response waits on it).
        for s in busy:
            s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        with idle_clients(exporter.port, 5) as extra:
            wait_until(lambda: all(closed_by_server(s) for s in extra), what="the 5 beyond the cap to be refused")
        # the busy ones end after the body wait (--web.read-header-timeout); then a scrape gets in
        seen = wait_until(lambda: counts(exporter), timeout=30, what="a scrape to get in")
        assert seen["refused"] >= 5
        assert seen["evicted"] == 0


def test_a_malformed_request_is_counted_and_logged_without_a_traceback(tmp_path):
    with run_exporter(ARGS, tmp_path) as exporter:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", exporter.port)) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                assert s.recv(100).split(b" ")[1] == b"400"
        wait_until(lambda: counts(exporter)["bad"] == 3, what="bad requests to be counted")
        assert "Traceback" not in exporter.stderr() and "Error handling request" not in exporter.stderr()


def test_at_a_low_descriptor_limit_the_cap_leaves_room_for_the_sources(tmp_path):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    args = [*ARGS, "--web.read-header-timeout=60s", "--web.idle-timeout=60s"]
    with run_exporter(args, tmp_path, preexec=limit) as exporter:
        assert "--web.max-connections=512 lowered to" in exporter.stderr()
        before = parse_exposition(exporter.metrics())["sysmon_source_success"]
        assert before[(("source", "meminfo"),)] == 1
        with idle_clients(exporter.port, 400) as socks:
            wait_until(lambda: sum(closed_by_server(s) for s in socks) >= 100, what="evictions at the lowered cap")
            time.sleep(0.3)  # a few samples taken while the clients hold every slot
            assert parse_exposition(exporter.metrics())["sysmon_source_success"] == before
        assert "Too many open files" not in exporter.stderr()

"""Real agent and relay processes for the guest tests, and reading their results."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.helpers import ROOT, Exporter, parse_exposition, stop_process, wait_until

RELAY = ROOT / "tests" / "relay.py"


@contextlib.contextmanager
def process(args: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        stop_process(proc)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``sysmon-exporter ARGS`` to completion (a command that exits by itself), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def agent_args(channel: str, interval: str = "200ms", *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exporter",
        "agent",
        f"--agent.channel={channel}",
        f"--agent.interval={interval}",
        *extra,
    ]


@contextlib.contextmanager
def relay(host_sock: Path, guest_sock: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    start = log.stat().st_size if log.exists() else 0
    with process([sys.executable, str(RELAY), str(host_sock), str(guest_sock)], log) as proc:
        # its "ready" line, printed after listen(): the socket file exists from bind() on, and a
        # connect between the two is refused
        wait_until(
            lambda: b"ready\n" in log.read_bytes()[start:] or proc.poll() is not None, what="the relay to listen"
        )
        assert proc.poll() is None, log.read_text()
        yield proc


def series(exp: Exporter, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric whose labels include ``labels``."""
    found = parse_exposition(exp.metrics()).get(name, {})
    return {k: v for k, v in found.items() if labels.items() <= dict(k).items()}


def value(exp: Exporter, name: str, **labels: str) -> float:
    """The sum of the matching samples (0 when there are none)."""
    return sum(series(exp, name, **labels).values())


def events(exp: Exporter, vm: str) -> dict[str, float]:
    return {dict(k)["event"]: v for k, v in series(exp, "sysmon_guest_channel_events_total", vm=vm).items()}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")

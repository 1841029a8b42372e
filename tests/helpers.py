"""Helpers for tests that run real processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hosts"
GOLDEN = ROOT / "tests" / "golden"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make test installs it)")
    return path


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


async def nothing_rendered() -> None:
    """``Published.rendered`` for an app with no sampler: no exposition yet."""
    return None


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Exporter:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def metrics(self) -> str:
        status, body, _ = http_get(self.url + "/metrics")
        assert status == 200, body
        return body.decode()

    def stderr(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def run_exporter(
    args: Sequence[str],
    tmp_path: Path,
    ready: bool = True,
    env: dict[str, str] | None = None,
    preexec=None,
    wrapper: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
) -> Iterator[Exporter]:  # type: ignore[no-untyped-def]
    """The real sysmon-exporter process on a free loopback port; stopped with SIGTERM.

    ``wrapper`` is a command that execs the rest, e.g. ``setpriv --reuid=65534 ...`` to run it unprivileged.
    """
    port = free_port()
    log = tmp_path / f"exporter-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}", *args],
            stdout=err,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
            preexec_fn=preexec,
            pass_fds=tuple(pass_fds),
        )
    exporter = Exporter(proc, port, log)
    try:
        if ready:
            wait_until(
                lambda: proc.poll() is not None or http_get(exporter.url + "/-/ready")[0] == 200,
                what="the exporter to become ready",
            )
            assert proc.poll() is None, f"exporter exited: {log.read_text()}"
        yield exporter
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def parse_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{metric name: {sorted label pairs: value}} from text 0.0.4."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@contextlib.contextmanager
def run_prometheus(
    targets: Sequence[str],
    tmp_path: Path,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    job_extra: str = "",
) -> Iterator[str]:
    """Debian's prometheus on a free loopback port scraping ``targets``; yields its base URL.

    ``job_extra`` is YAML added to the scrape job (e.g. ``scheme``, ``tls_config``, ``basic_auth``), indented
    by four spaces."""
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    rules = "".join(f"\n  - {p}" for p in rule_files)
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        + (f"rule_files:{rules}\n" if rule_files else "")
        + "scrape_configs:\n  - job_name: sysmon\n"
        + job_extra
        + "    static_configs:\n      - targets: ["
        + ", ".join(f"'{t}'" for t in targets)
        + "]\n"
    )
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=err,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is not None or http_get(url + "/-/ready")[0] == 200,
            timeout=30,
            what="prometheus to become ready",
        )
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        stop_process(proc, timeout=10)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM (after SIGCONT, in case a test stopped it), then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def promql(base: str, query: str) -> list[dict]:  # type: ignore[type-arg]
    import json
    import urllib.parse

    status, body, _ = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    payload = json.loads(body)
    assert status == 200 and payload["status"] == "success", f"{query}: {payload}"
    return payload["data"]["result"]  # type: ignore[no-any-return]


def opened_relative(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names os.open is given relative to a directory (``dir_fd``, as the cgroup reader opens them) from here on."""
    names: list[str] = []
    real = os.open

    def counted(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if dir_fd is not None:
            names.append(path)
        return real(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", counted)
    return names


def remove_cgroup(path: Path) -> None:
    """rmdir a test cgroup, retrying while the kernel still counts an exiting task in it (EBUSY)."""
    import errno

    def removed() -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            return False
        return True

    wait_until(removed, timeout=10, what=f"{path} to be removable")


def root_block_device() -> tuple[str, str]:
    """(MAJ:MIN, kernel name) of the disk holding /, from /proc/self/mountinfo and sysfs (a partition's disk)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            dev = Path("/sys/dev/block") / fields[2]
            break
    else:
        raise AssertionError("no / in /proc/self/mountinfo")
    if not dev.exists():
        pytest.skip(f"/ is on {fields[2]}, which is not a block device (overlay or network filesystem)")
    disk = dev.resolve()
    if (disk / "partition").exists():  # blkio counts per disk
        disk = disk.parent
    uevent = dict(line.split("=", 1) for line in (disk / "uevent").read_text().splitlines())
    return f"{uevent['MAJOR']}:{uevent['MINOR']}", uevent["DEVNAME"]

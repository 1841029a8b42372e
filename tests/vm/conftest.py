"""One real guest per session (tests/vm/qemu.py) and the host exporter reading its agent's port.

`make test-vm` builds the image (tests/vm/build.sh) and passes it as VM_IMAGE; run alone,
`pytest tests/vm` builds it here (cached under VM_CACHE, default .cache/vm). Boots under TCG
take a minute or more on a loaded 2-core machine: the waits below are generous on purpose.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, Exporter, http_get, parse_exposition, require_binary, require_root, run_exporter
from tests.helpers import wait_until as _wait_until
from tests.vm.qemu import Guest, boot

BOOT_TIMEOUT = 900.0  # seconds until the in-guest exporter answers (about 70 s measured idle under TCG)
AGENT_TIMEOUT = 180.0  # seconds for the agent's rows (every 5 s, deploy/sysmon-agent.service) to show


def wait_until(predicate, timeout: float = AGENT_TIMEOUT, what: str = "condition"):  # type: ignore[no-untyped-def]
    return _wait_until(predicate, timeout=timeout, interval=0.5, what=what)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked stops_guest run last: after them the session's guest is gone."""
    items.sort(key=lambda item: item.get_closest_marker("stops_guest") is not None)


def metrics(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    status, body, _ = http_get(url, timeout=30)
    assert status == 200, body
    return parse_exposition(body.decode())


def series(
    families: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **match: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` whose labels include ``match``."""
    return {k: v for k, v in families.get(name, {}).items() if match.items() <= dict(k).items()}


@pytest.fixture(scope="session")
def vm_image() -> Path:
    require_root()  # mmdebstrap's root mode and chroot
    for binary in ("qemu-system-x86_64", "mmdebstrap", "mke2fs"):
        require_binary(binary)
    if os.environ.get("VM_IMAGE"):
        return Path(os.environ["VM_IMAGE"])
    cache = os.environ.get("VM_CACHE", str(ROOT / ".cache" / "vm"))
    out = subprocess.run(
        [str(ROOT / "tests" / "vm" / "build.sh"), sys.executable, cache], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"tests/vm/build.sh failed:\n{out.stderr[-4000:]}"
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def guest(vm_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    run_dir = tmp_path_factory.mktemp("vm")
    vm = boot(vm_image, run_dir)
    try:

        def ready() -> bool:
            assert vm.proc.poll() is None, f"QEMU exited {vm.proc.returncode}: {(run_dir / 'qemu.log').read_text()}"
            return http_get(f"http://127.0.0.1:{vm.metrics_port}/-/ready", timeout=10)[0] == 200

        try:
            wait_until(ready, timeout=BOOT_TIMEOUT, what=f"the in-guest exporter ({vm.accel})")
        except AssertionError as e:
            console = vm.console.read_text(errors="replace")[-3000:] if vm.console.exists() else "(none)"
            raise AssertionError(f"{e}\nguest console (tail):\n{console}") from None
        yield vm
    finally:
        vm.stop()


class HostExporter:
    """This work tree's exporter on the host with --guest.socket on the guest's agent port; restartable."""

    def __init__(self, guest: Guest, tmp_path: Path) -> None:
        self.guest, self.tmp_path = guest, tmp_path
        self._stack = contextlib.ExitStack()
        self.exporter: Exporter | None = None

    def start(self) -> None:
        args = [f"--guest.socket={self.guest.agent_pattern}", "--guest.rescan-interval=1s"]
        self.exporter = self._stack.enter_context(run_exporter(args, self.tmp_path))

    def stop(self) -> None:
        self._stack.close()
        self.exporter = None

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        assert self.exporter is not None
        return metrics(self.exporter.url + "/metrics")

    def log(self) -> str:
        assert self.exporter is not None
        return self.exporter.stderr()


@pytest.fixture(scope="session")
def host_exporter(guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostExporter]:
    host = HostExporter(guest, tmp_path_factory.mktemp("host-exporter"))
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def guest_up(guest: Guest, host_exporter: HostExporter) -> Guest:
    """The guest once the host exporter has its agent's rows."""
    wait_until(
        lambda: series(host_exporter.metrics(), "sysmon_guest_up", vm=guest.name) == {(("vm", guest.name),): 1.0},
        what=f"sysmon_guest_up{{vm={guest.name!r}}} 1 on the host exporter",
    )
    return guest

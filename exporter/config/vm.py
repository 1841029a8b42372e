"""``--vm.*``: how the ``vm`` source finds the VMs this host runs."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import duration_in, int_in


def parse_qmp_pattern(text: str) -> str:
    if text and "{vm}" not in text:
        raise ValueError(f"{text!r} has no {{vm}}; pass a path such as /run/vms/{{vm}}/qmp.sock")
    return text


@dataclass(frozen=True)
class VmConfig:
    rescan_seconds: float = 5.0
    qmp_socket: str = ""  # a path with {vm}: where a QEMU VM's QMP socket is
    max_count: int = 256


VM = Section(
    VmConfig,
    rescan_seconds=Opt("vm.rescan-interval", duration_in(0.05, 300.0), "how often procfs is searched for VM processes"),
    qmp_socket=Opt(
        "vm.qmp-socket",
        parse_qmp_pattern,
        "QMP socket of a QEMU VM, {vm} its name: vCPU threads for a QEMU without debug-threads=on",
    ),
    max_count=Opt("vm.max-count", int_in(1, 100_000), "most VMs exported"),
)

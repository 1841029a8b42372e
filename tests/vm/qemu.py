"""Boots the test guest (tests/vm/build.sh's image) under QEMU and stops it.

The guest has two virtio-serial ports on one ``virtio-serial-pci``: ``org.sysmon.agent`` (the
agent's default channel; QEMU listens on ``<run>/vms/<name>/agent.sock``, the host exporter's
``--guest.socket=<run>/vms/{vm}/agent.sock`` connects) and ``org.sysmon.test`` (the guest's
command port, tests/vm/guest/layer/usr/local/sbin/sysmon-test-port). User networking forwards a
loopback port to the in-guest exporter's /metrics (9477) and one to its gRPC shim (50110).

KVM is used where it runs a stock kernel; ``/dev/kvm`` served by ``kvm_pvm`` (PVM) runs only
kernels built for PVM, so there (and where /dev/kvm is missing) QEMU's TCG runs the guest.
``VM_ACCEL=kvm|tcg`` overrides the choice.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

GUEST_CPUS = 2
GUEST_MEMORY_MIB = 1024
AGENT_PORT = "org.sysmon.agent"
TEST_PORT = "org.sysmon.test"
GUEST_METRICS_PORT = 9477  # the in-guest exporter's default --web.listen-address
GUEST_GRPC_PORT = 50110  # listen_addr in guest/layer/etc/serviceradar/checkers/sysmon-vm.json


def accelerator() -> tuple[str, list[str]]:
    """("kvm" | "tcg", QEMU arguments) for this machine."""
    forced = os.environ.get("VM_ACCEL", "")
    if forced not in ("", "kvm", "tcg"):
        raise ValueError(f"VM_ACCEL={forced!r}: pass kvm or tcg")
    kvm = forced == "kvm" or (
        forced == ""
        and os.access("/dev/kvm", os.R_OK | os.W_OK)
        and not Path("/sys/module/kvm_pvm").exists()  # PVM runs PVM-built guest kernels only
    )
    if kvm:
        return "kvm", ["-accel", "kvm", "-cpu", "host"]
    return "tcg", ["-accel", "tcg,thread=multi", "-cpu", "max"]


@dataclass
class Guest:
    name: str
    run_dir: Path
    proc: subprocess.Popen[bytes]
    accel: str
    metrics_port: int
    grpc_port: int

    @property
    def agent_socket(self) -> Path:
        return agent_socket(self.run_dir, self.name)

    @property
    def agent_pattern(self) -> str:
        return str(self.run_dir / "vms" / "{vm}" / "agent.sock")

    @property
    def test_socket(self) -> Path:
        return self.run_dir / "test.sock"

    @property
    def console(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Sends one line to the guest's command port and returns its one-line answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.test_socket))
            s.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError(f"the guest's command port closed before answering {line!r}")
                answer += chunk
        return answer.decode().strip()

    def stop(self, timeout: float = 60.0) -> int:
        """Stops QEMU (SIGTERM: it exits at once, closing its chardev sockets) and returns its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def agent_socket(run_dir: Path, name: str) -> Path:
    return run_dir / "vms" / name / "agent.sock"


def qemu_command(image: Path, run_dir: Path, name: str, metrics_port: int, grpc_port: int) -> list[str]:
    _, accel = accelerator()
    forwards = f"hostfwd=tcp:127.0.0.1:{metrics_port}-:{GUEST_METRICS_PORT}"
    forwards += f",hostfwd=tcp:127.0.0.1:{grpc_port}-:{GUEST_GRPC_PORT}"
    return [
        "qemu-system-x86_64",
        # debug-threads=on names the vCPU threads "CPU <n>/TCG" (or /KVM), as libvirt starts QEMU.
        "-name", f"{name},debug-threads=on",
        *accel,
        "-smp", str(GUEST_CPUS),
        "-m", str(GUEST_MEMORY_MIB),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(image / "vmlinuz"),
        "-initrd", str(image / "initrd.img"),
        "-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=false",
        # snapshot=on: the guest's writes go to a temporary file, the cached image stays as built.
        "-drive", f"file={image / 'root.ext4'},format=raw,if=virtio,snapshot=on",
        "-device", "virtio-serial-pci,id=vser",
        "-chardev", f"socket,id=agent,path={agent_socket(run_dir, name)},server=on,wait=off",
        "-device", f"virtserialport,bus=vser.0,chardev=agent,name={AGENT_PORT}",
        "-chardev", f"socket,id=test,path={run_dir / 'test.sock'},server=on,wait=off",
        "-device", f"virtserialport,bus=vser.0,chardev=test,name={TEST_PORT}",
        "-netdev", f"user,id=net,{forwards}",
        "-device", "virtio-net-pci,netdev=net",
        "-serial", f"file:{run_dir / 'console.log'}",
    ]  # fmt: skip


def boot(image: Path, run_dir: Path, name: str = "sysmon-test") -> Guest:
    """Starts QEMU; the guest is still booting when this returns."""
    agent_socket(run_dir, name).parent.mkdir(parents=True, exist_ok=True)
    metrics_port, grpc_port = free_port(), free_port()
    accel, _ = accelerator()
    log = open(run_dir / "qemu.log", "wb")  # noqa: SIM115 - QEMU writes it for as long as it runs
    proc = subprocess.Popen(
        qemu_command(image, run_dir, name, metrics_port, grpc_port),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return Guest(name, run_dir, proc, accel, metrics_port, grpc_port)

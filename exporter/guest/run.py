"""The ``agent`` and ``verify-record`` commands: flags -> settings -> run."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

from exporter import __version__
from exporter.config import AGENT, AGENT_COLLECTORS, VERIFY, ConfigError
from exporter.guest.agent import Agent, AgentSettings
from exporter.guest.record import verify_file
from exporter.snapshot import CgroupReaders, Readers, SystemClock
from exporter.sources.cgroup import CgroupLimits
from exporter.sources.stat import user_hz


def run_agent(argv: Sequence[str], env: Mapping[str, str], setup_logging: Callable[[str], None]) -> int:
    v = AGENT.parse(argv, env)
    setup_logging(v["log_level"])
    collectors = frozenset(n for n in AGENT_COLLECTORS if v[f"collector_{n}"])
    readers = Readers(v["path_procfs"], v["path_sysfs"], user_hz(), collectors)
    cgroups = None
    if "cgroup" in collectors:
        limits = CgroupLimits(v["cgroup_max_depth"], v["cgroup_include"], v["cgroup_exclude"], v["cgroup_max_count"])
        cgroups = CgroupReaders(v["path_cgroupfs"], limits, readers.hz, v["path_sysfs"])
    settings = AgentSettings(
        channel=v["agent_channel"],
        interval_seconds=v["agent_interval"],
        queue_size=v["agent_queue_size"],
        readers=readers,
        dev=v["path_dev"],
        version=__version__,
        cgroups=cgroups,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Agent(settings, SystemClock(), stop).run()


def run_verify(argv: Sequence[str], env: Mapping[str, str]) -> int:
    v = VERIFY.parse(argv, env)
    if v["public_key"] is None:
        raise ConfigError("--public-key", "needed; pass the Ed25519 public key PEM that matches the signing key")
    try:
        public = v["public_key"].read_bytes()
    except OSError as e:
        raise ConfigError("--public-key", f"{v['public_key']}: {e.strerror}") from None
    path = Path(v["file"])
    try:
        verdict = verify_file(path, public)
    except OSError as e:
        print(f"sysmon-exporter: {path}: {e.strerror}", file=sys.stderr)
        return 2
    if verdict.bad_line is not None:
        print(f"{path}:{verdict.bad_line}: {verdict.reason}")
        return 1
    print(f"{path}: {verdict.lines} lines, all signatures valid")
    return 0

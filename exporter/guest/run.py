"""The ``agent`` and ``verify-record`` commands: flags -> settings -> run."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

from exporter import __version__
from exporter.config import VERIFY, ConfigError, load_agent
from exporter.config.commands import VERIFY_FLAGS
from exporter.guest.agent import Agent, AgentSettings
from exporter.guest.record import verify_file
from exporter.snapshot import CgroupSources, CpuSources, SystemClock
from exporter.sources.cgroup import CgroupLimits, CgroupMemo
from exporter.sources.dirwatch import watch_budget
from exporter.sources.stat import user_hz


def run_agent(argv: Sequence[str], env: Mapping[str, str], setup_logging: Callable[[str], None]) -> int:
    config = load_agent(argv, env)
    setup_logging(config.log_level)
    readers = CpuSources(config.roots.procfs, config.roots.sysfs, user_hz(), config.collectors)
    cgroups = None
    if "cgroup" in config.collectors:
        c = config.cgroup
        cgroups = CgroupSources(
            config.roots.cgroupfs,
            CgroupLimits(c.max_depth, c.include, c.exclude, c.max_count),
            readers.hz,
            config.roots.sysfs,
            CgroupMemo(watch_budget(config.roots.procfs)),
        )
    settings = AgentSettings(
        channel=config.agent.channel,
        interval_seconds=config.agent.interval_seconds,
        queue_size=config.agent.queue_size,
        readers=readers,
        dev=config.roots.dev,
        version=__version__,
        cgroups=cgroups,
        host_state=config.agent.host_state,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Agent(settings, SystemClock(), stop).run()


def run_verify(argv: Sequence[str], env: Mapping[str, str]) -> int:
    v = VERIFY.parse(argv, env)
    key = VERIFY_FLAGS.build(v).public_key
    if key is None:
        raise ConfigError("--public-key", "needed; pass the Ed25519 public key PEM that matches the signing key")
    try:
        public = key.read_bytes()
    except OSError as e:
        raise ConfigError("--public-key", f"{key}: {e.strerror}") from None
    path = Path(v.positional["file"])
    try:
        verdict = verify_file(path, public)
    except OSError as e:
        print(f"sysmon-exporter: {path}: {e.strerror}", file=sys.stderr)
        return 2
    if verdict.bad_line is not None:
        event = f" (event {verdict.event_id})" if verdict.event_id else ""
        print(f"{path}:{verdict.bad_line}: {verdict.reason}{event}")
        return 1
    print(f"{path}: {verdict.lines} lines, all signatures valid")
    return 0

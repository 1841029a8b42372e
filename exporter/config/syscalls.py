"""``--syscalls.*``: the eBPF syscall counters' filters and labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.config.flags import ConfigError, Opt, Section
from exporter.config.values import int_in, parse_bool, parse_choice, parse_pid

SYSCALLS_BY = ("comm", "cgroup")


@dataclass(frozen=True)
class SyscallsConfig:
    pid: int | None = None
    cgroup: Path | None = None
    include_self: bool = False
    by: str | None = None
    top: int = 10
    containers: bool = False

    def check(self, enabled: bool) -> None:
        """Filters without the collector would be silently ignored: refuse them."""
        if enabled:
            return
        for attr, opt in SYSCALLS.opts.items():
            if attr != "top" and getattr(self, attr) not in (None, False):
                raise ConfigError(f"--{opt.name}", "only applies to the syscalls collector; add --collector.syscalls")


SYSCALLS = Section(
    SyscallsConfig,
    pid=Opt("syscalls.pid", parse_pid, "count only this process and its descendants (syscalls collector)"),
    cgroup=Opt("syscalls.cgroup", Path, "count only this cgroup v2 directory and below (syscalls collector)"),
    include_self=Opt("syscalls.include-self", parse_bool, "count the exporter's own syscalls too", boolean=True),
    by=Opt("syscalls.by", parse_choice(SYSCALLS_BY), "add a label: " + " or ".join(SYSCALLS_BY)),
    top=Opt("syscalls.top", int_in(1, 1000), "with --syscalls.by, label values kept; the rest count as other"),
    containers=Opt(
        "syscalls.containers",
        parse_bool,
        "count only tasks in container cgroups (docker, containerd, cri-o scopes, cgroupfs ids), found each sample",
        boolean=True,
    ),
)

"""``--path.*``: where the kernel's files are (one :class:`~exporter.catalogue.Roots` for every command)."""

from __future__ import annotations

from pathlib import Path

from exporter.catalogue import Roots
from exporter.config.flags import Opt, Section

PROCFS = Opt("path.procfs", Path, "procfs mount point (e.g. /host/proc in a container)")
SYSFS = Opt("path.sysfs", Path, "sysfs mount point (e.g. /host/sys in a container)")
CGROUPFS = Opt("path.cgroupfs", Path, "cgroupfs mount point (e.g. /host/sys/fs/cgroup)")
ROOTFS = Opt("path.rootfs", Path, "root of the filesystems to measure (e.g. /host/root in a container)")
DEV = Opt("path.dev", Path, "device directory (virtio-serial ports, /dev/vsock)")
HOST_STATE = Opt("path.host-state", Path, "in a guest: the agent's file with the host's view (--agent.host-state)")

# The exporter measures filesystems; the agent and diag open devices.
SERVE_PATHS = Section(Roots, procfs=PROCFS, sysfs=SYSFS, rootfs=ROOTFS, cgroupfs=CGROUPFS, host_state=HOST_STATE)
AGENT_PATHS = Section(Roots, procfs=PROCFS, sysfs=SYSFS, dev=DEV, cgroupfs=CGROUPFS)
DIAG_PATHS = Section(
    Roots, procfs=PROCFS, sysfs=SYSFS, dev=DEV, cgroupfs=CGROUPFS, rootfs=ROOTFS, host_state=HOST_STATE
)

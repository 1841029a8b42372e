"""Filesystem families from a Snapshot (/proc/1/mountinfo and statvfs of each block-device filesystem)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.snapshot import Snapshot

LABELS = ["device", "fstype", "mountpoint"]


def collect_filesystem(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_filesystem_size_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 2.7e11 (and free, avail, ...)."""
    if not snap.filesystems:
        return
    size = GaugeMetricFamily("sysmon_filesystem_size_bytes", "Filesystem size (statvfs f_blocks).", labels=LABELS)
    free = GaugeMetricFamily(
        "sysmon_filesystem_free_bytes", "Free space, including blocks reserved for root (f_bfree).", labels=LABELS
    )
    avail = GaugeMetricFamily(
        "sysmon_filesystem_avail_bytes", "Space available to unprivileged users (f_bavail).", labels=LABELS
    )
    files = GaugeMetricFamily("sysmon_filesystem_files", "Inodes (f_files).", labels=LABELS)
    files_free = GaugeMetricFamily("sysmon_filesystem_files_free", "Free inodes (f_ffree).", labels=LABELS)
    readonly = GaugeMetricFamily("sysmon_filesystem_readonly", "1 if mounted read-only.", labels=LABELS)
    error = GaugeMetricFamily(
        "sysmon_filesystem_device_error", "1 if statvfs failed for this mount point in the last sample.", labels=LABELS
    )
    for fs in snap.filesystems:
        labels = [fs.device, fs.fstype, fs.mount_point]
        readonly.add_metric(labels, 1.0 if fs.readonly else 0.0)
        error.add_metric(labels, 1.0 if fs.error else 0.0)
        if fs.error:
            continue
        size.add_metric(labels, fs.size_bytes)
        free.add_metric(labels, fs.free_bytes)
        avail.add_metric(labels, fs.avail_bytes)
        files.add_metric(labels, fs.files)
        files_free.add_metric(labels, fs.files_free)
    yield from (size, free, avail, files, files_free, readonly, error)

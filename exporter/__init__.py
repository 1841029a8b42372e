"""sysmon-exporter: per-core CPU usage and frequency, memory and cgroups for Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sysmon-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""sysmon-exporter: per-core CPU usage and frequency, memory and cgroups for Prometheus."""

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]), and so do
# `make image` and docker/build-image.sh. A literal, not importlib.metadata.version(): that import (with
# the zipfile, csv and email modules it loads) cost every process about 1 MiB of RSS for one string.
__version__ = "0.1.0"

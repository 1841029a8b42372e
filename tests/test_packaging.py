"""Packaging: `make run` installs the runtime only, `make test` the test extras; the LICENSE is pyproject's;
the version is written once, in exporter/__init__.py."""

from __future__ import annotations

import subprocess
import tomllib

from exporter import __version__
from tests.helpers import ROOT


def dry_run(target: str, tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def test_make_run_installs_the_runtime_only(tmp_path):
    installs = [line for line in dry_run("run", tmp_path) if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/pip install --quiet -e ."]


def test_make_test_installs_the_test_extras(tmp_path):
    installs = [line for line in dry_run("test", tmp_path) if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/pip install --quiet -e '.[test]'"]


def test_license_is_the_one_pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()
    assert project["license"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_runtime_dependencies_cover_what_serving_imports():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].strip().lower() for d in deps}
    # The web configuration file is YAML with bcrypt hashes: both are needed without any extra.
    assert {"prometheus-client", "aiohttp", "uvloop", "bcrypt", "pyyaml"} <= names


def test_the_version_is_written_once_and_the_package_and_the_image_read_it(tmp_path):
    """pyproject.toml, `make image` and docker/build-image.sh take exporter.__version__, so none can drift."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "exporter.__version__"}
    assert f" localhost/sysmon-exporter:{__version__}" in "\n".join(dry_run("image", tmp_path))
    [line] = [x for x in (ROOT / "docker" / "build-image.sh").read_text().splitlines() if x.startswith("VERSION=")]
    out = subprocess.run(["sh", "-c", f'{line}\necho "$VERSION"'], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout == f"{__version__}\n"


def test_the_chart_deploys_and_the_dockerfile_labels_the_same_version():
    """The chart's appVersion is the image tag it deploys by default; the Dockerfile's ARG the label of a bare build."""
    import yaml

    chart = yaml.safe_load((ROOT / "helm" / "sysmon-exporter" / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert f"ARG VERSION={__version__}" in (ROOT / "docker" / "Dockerfile").read_text().splitlines()

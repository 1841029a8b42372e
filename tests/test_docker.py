"""docker/Dockerfile as written (`make image-test` builds and runs it; it needs podman and
is not part of `make test`): the properties the image promises, checked on the text."""

from __future__ import annotations

import json
import re

import yaml

from exporter.config import DEFAULT_PORT
from tests.helpers import ROOT

DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every NAME instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.M)]


def test_multi_stage_on_a_public_base_given_as_a_build_arg():
    assert "BASE_IMAGE=python:3.11-slim" in instructions("ARG")
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    assert any(c.startswith("--from=build ") for c in instructions("COPY"))


def test_non_root_numeric_user_exec_form_entrypoint_and_the_default_port():
    [user] = instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit()), user
    [entrypoint] = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/opt/sysmon-exporter/bin/sysmon-exporter"]
    assert instructions("EXPOSE") == [str(DEFAULT_PORT)]


def test_oci_labels():
    labels = " ".join(instructions("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_image_installs_the_grpc_extra_the_chart_can_switch_on():
    """The chart's grpc.listenAddress needs the grpc extra at run time; without it start-up fails."""
    [extras] = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("EXTRAS=")]
    assert "grpc" in extras.split(",")
    assert "${EXTRAS:+[$EXTRAS]}" in DOCKERFILE
    values = yaml.safe_load((ROOT / "helm" / "sysmon-exporter" / "values.yaml").read_text())
    assert "listenAddress" in values["grpc"]


def stages() -> list[str]:
    """The Dockerfile's text per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return re.split(r"^FROM\s.*$", text, flags=re.M)[1:]


STAGE_LABEL = 'org.sysmon-exporter.stage="build"'


def test_the_runtime_venv_never_holds_pip_and_the_final_stage_strips_the_bases():
    build, final = stages()
    # The venv is made without pip and filled by a pip outside it.
    assert "python3 -m venv --without-pip /opt/sysmon-exporter" in build
    [install] = [c for c in instructions("RUN") if " install " in c]
    assert "--python /opt/sysmon-exporter/bin/python install" in install
    assert "! /opt/sysmon-exporter/bin/python -c 'import pip'" in build
    assert "! /opt/sysmon-exporter/bin/python -c 'import setuptools'" in build
    # Only the venv crosses; the runtime's own Python loses pip, setuptools and ensurepip.
    assert [c for c in instructions("COPY") if c.startswith("--from=")] == [
        "--from=build /opt/sysmon-exporter /opt/sysmon-exporter"
    ]
    strip = final.split("COPY --from=build")[0]
    for path in ('"$d"/pip ', '"$d"/setuptools ', '"$d"/ensurepip', "/usr/share/python-wheels"):
        assert path in strip
    assert "! python3 -c 'import pip'" in final and "! python3 -c 'import setuptools'" in final


def test_only_the_build_stage_carries_the_label_the_build_script_prunes():
    build, final = stages()
    assert STAGE_LABEL in build and "org.sysmon-exporter.stage" not in final
    # The label is the build stage's first instruction, so every step image of the stage has it.
    first = next(line for line in build.splitlines() if line and not line.startswith("#"))
    assert first == f"LABEL {STAGE_LABEL}"
    script = (ROOT / "docker" / "build-image.sh").read_text()
    assert "STAGE_LABEL=org.sysmon-exporter.stage=build" in script
    assert 'podman image prune --force --filter label="$STAGE_LABEL"' in script
    test = (ROOT / "docker" / "image-test.sh").read_text()
    assert "./docker/build-image.sh" in test and "--filter label=org.sysmon-exporter.stage=build" in test


def test_make_image_builds_without_the_checks():
    makefile = (ROOT / "Makefile").read_text()
    [recipe] = re.findall(r"^image: .*\n\t(.*)$", makefile, re.M)
    assert "./docker/build-image.sh $(IMAGE)" in recipe and "image-test" not in recipe
    [recipe] = re.findall(r"^image-test: .*\n\t(.*)$", makefile, re.M)
    assert "./docker/image-test.sh" in recipe

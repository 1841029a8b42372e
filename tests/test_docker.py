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

#!/bin/sh
# Build docker/Dockerfile into podman's local image store as IMAGE (default
# localhost/sysmon-exporter:<version>), with no registry, and report its size.
# `make image` runs this; docker/image-test.sh builds with it before its checks.
#
# The base image is made locally (mmdebstrap: Debian bookworm + python3-venv,
# then `podman import`) and passed as BASE_IMAGE; pip inside the build cannot
# reach an index, so the wheels for the base image's Python are downloaded on
# the host into the build context's wheelhouse/ and installed --no-index.
# No step image is kept, and any image labelled org.sysmon-exporter.stage=build
# (the build stage's) is removed afterwards: no dangling image is left behind.
set -eu
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}  # reads pyproject.toml and downloads the wheels; any Python with pip
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' exporter/__init__.py)  # as pyproject.toml reads it
IMAGE=${1:-localhost/sysmon-exporter:$VERSION}
# This run's own work directory (other checkouts may build at the same time); the base image is shared.
WORK=${IMAGE_BUILD_DIR:-/tmp/sysmon-image-build-$$}
BASE=localhost/sysmon-base:bookworm-python3
ULIMITS="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
STAGE_LABEL=org.sysmon-exporter.stage=build
# crun fails on this kind of host's hybrid cgroups; runc works.
podman() { command podman --runtime runc "$@"; }

mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
if ! podman image exists "$BASE"; then
    echo "image: making base image $BASE (mmdebstrap bookworm + python3-venv)"
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv bookworm "$WORK/base.tar"
    podman import --quiet "$WORK/base.tar" "$BASE" >/dev/null
    rm -f "$WORK/base.tar"
fi
PYVER=$(podman run --rm --network none $ULIMITS "$BASE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "image: base image $BASE ($(podman image inspect --format "{{.Size}}" "$BASE") bytes), Python $PYVER"

CTX="$WORK/context"
mkdir -p "$CTX/wheelhouse"
git ls-files --cached --others --exclude-standard pyproject.toml README.md exporter | tar -cf - -T - | tar -xf - -C "$CTX"
# Runtime dependencies, the grpc extra the Dockerfile installs by default, and the
# build requirements, as pyproject.toml states them.
"$PYTHON" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["project"]["dependencies"] + p["project"]["optional-dependencies"]["grpc"] + p["build-system"]["requires"]))' \
    > "$WORK/requirements.txt"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$CTX/wheelhouse" --only-binary=:all: \
    --python-version "$PYVER" --implementation cp --abi "cp$(echo "$PYVER" | tr -d .)" --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -r "$WORK/requirements.txt" 2>&1 | grep -v "^WARNING: Location" || true
echo "image: $(ls "$CTX/wheelhouse" | wc -l) wheels: $(ls "$CTX/wheelhouse" | tr '\n' ' ')"

start=$(date +%s)
status=0
# --layers=false: no step image is kept as a cache (the wheels are installed afresh each time anyway).
podman build --quiet --layers=false $ULIMITS --network none -f docker/Dockerfile --ignorefile docker/Dockerfile.dockerignore \
    --build-arg BASE_IMAGE="$BASE" --build-arg VERSION="$VERSION" \
    --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links=/src/wheelhouse" \
    -t "$IMAGE" "$CTX" >/dev/null || status=$?
# Whether the build worked or not, any build-stage image goes (with podman's default --layers
# every step's image is kept as a cache and the build stage's would be left dangling).
podman image prune --force --filter label="$STAGE_LABEL" >/dev/null
[ "$status" -eq 0 ] || { echo "image: podman build failed ($status)" >&2; exit "$status"; }
left=$(podman images --all --quiet --filter label="$STAGE_LABEL")
if [ -n "$left" ]; then
    echo "image: build-stage images left after the prune: $left" >&2
    exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: built $IMAGE in $(( $(date +%s) - start )) s: $size bytes ($(( (size + 524288) / 1048576 )) MiB), $(podman image inspect --format 'user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}, ports {{.Config.ExposedPorts}}' "$IMAGE")"

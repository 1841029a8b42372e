#!/bin/sh
# Build the image with no registry and run it as on a host: host /proc and /sys
# bind-mounted read-only, read-only root filesystem, no capabilities, no network;
# then scrape /metrics and ask the gRPC shim from inside the container.
#
# The base image is made locally (mmdebstrap: Debian bookworm + python3-venv,
# then `podman import`) and passed as BASE_IMAGE; pip inside the build cannot
# reach an index, so the wheels for the base image's Python are downloaded on
# the host into the build context's wheelhouse/ and installed --no-index.
set -eu
cd "$(dirname "$0")/.."

# The work directory, image tag and container are this run's own (other checkouts may
# run this at the same time); the base image is shared and made once.
WORK=${IMAGE_TEST_DIR:-/tmp/sysmon-image-test-$$}
BASE=localhost/sysmon-base:bookworm-python3
IMAGE=localhost/sysmon-exporter:image-test-$$
NAME=sysmon-image-test-$$
PYTHON=${PYTHON:-python3}  # downloads the wheels; any Python with pip
ULIMITS="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
# crun fails on this kind of host's hybrid cgroups; runc works.
podman() { command podman --runtime runc "$@"; }

mkdir -p "$WORK"
if ! podman image exists "$BASE"; then
    echo "image-test: making base image $BASE (mmdebstrap bookworm + python3-venv)"
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv bookworm "$WORK/base.tar"
    podman import --quiet "$WORK/base.tar" "$BASE" >/dev/null
    rm -f "$WORK/base.tar"
fi
PYVER=$(podman run --rm --network none $ULIMITS "$BASE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "image-test: base image Python $PYVER"

CTX="$WORK/context"
rm -rf "$CTX"
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
echo "image-test: $(ls "$CTX/wheelhouse" | wc -l) wheels: $(ls "$CTX/wheelhouse" | tr '\n' ' ')"

podman build --quiet $ULIMITS --network none -f docker/Dockerfile --ignorefile docker/Dockerfile.dockerignore \
    --build-arg BASE_IMAGE="$BASE" --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links=/src/wheelhouse" \
    -t "$IMAGE" "$CTX" >/dev/null
echo "image-test: built $IMAGE: $(podman image inspect --format '{{.Size}} bytes, user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}, ports {{.Config.ExposedPorts}}' "$IMAGE")"

cleanup() { podman rm --force --time 2 "$NAME" >/dev/null 2>&1 || true; }
trap 'cleanup; podman rmi --force "$IMAGE" >/dev/null 2>&1 || true; rm -rf "$CTX" "$WORK/requirements.txt"; rmdir "$WORK" 2>/dev/null || true' EXIT
# The flags and mounts the Helm chart gives it by default, and its optional gRPC port.
podman run --detach --name "$NAME" --network none $ULIMITS --read-only --cap-drop ALL \
    -v /proc:/host/proc:ro -v /sys:/host/sys:ro -v /:/host/root:ro \
    "$IMAGE" --path.procfs=/host/proc --path.sysfs=/host/sys --path.cgroupfs=/host/sys/fs/cgroup \
    --path.rootfs=/host/root --web.listen-address=127.0.0.1:9477 --grpc.listen-address=127.0.0.1:50051 >/dev/null

# --network none: scrape and call from inside the container's own network namespace.
podman exec -i "$NAME" /opt/sysmon-exporter/bin/python - serve < docker/image-check.py
ids=$(podman exec "$NAME" /opt/sysmon-exporter/bin/python -c 'import os; print(os.getuid(), os.getgid(), sep=":")')
readonly_root=$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME")
echo "image-test: process runs as uid:gid $ids, root filesystem read-only: $readonly_root"
if [ "$ids" != "65534:65534" ] || [ "$readonly_root" != "true" ]; then
    echo "image-test: expected uid:gid 65534:65534 on a read-only root filesystem" >&2
    exit 1
fi
podman logs "$NAME" 2>&1 | sed 's/^/  log: /'
cleanup

# perf with CAP_PERFMON and nothing else: the permission check passes (a host
# without a PMU then reports the missing counter instead of a refusal). podman
# before containers/common 0.66 allows perf_event_open in its default seccomp
# profile only with CAP_SYS_ADMIN as well, hence seccomp=unconfined here;
# Docker 23+ and containerd 1.7+ allow it for CAP_PERFMON alone.
podman run --detach --name "$NAME" --network none $ULIMITS --read-only --cap-drop ALL --cap-add PERFMON \
    --security-opt seccomp=unconfined -v /proc:/host/proc:ro -v /sys:/host/sys:ro \
    "$IMAGE" --path.procfs=/host/proc --path.sysfs=/host/sys --web.listen-address=127.0.0.1:9477 >/dev/null
for _ in $(seq 50); do podman logs "$NAME" 2>&1 | grep -q "listening on" && break; sleep 0.1; done
sleep 1.5
perf_line=$(podman logs "$NAME" 2>&1 | grep "source perf" || echo "msg=perf counters open")
echo "image-test: with CAP_PERFMON: ${perf_line#*msg=}"
case "$perf_line" in
    *refused*) echo "image-test: CAP_PERFMON did not let perf_event_open through" >&2; exit 1 ;;
esac
cleanup

# eBPF syscall counts with CAP_BPF and CAP_PERFMON alone, still uid 65534 (seccomp as above:
# podman's older default profile allows bpf(2) only with CAP_SYS_ADMIN).
podman run --detach --name "$NAME" --network none $ULIMITS --read-only --cap-drop ALL --cap-add BPF --cap-add PERFMON \
    --security-opt seccomp=unconfined -v /proc:/host/proc:ro -v /sys:/host/sys:ro \
    "$IMAGE" --path.procfs=/host/proc --path.sysfs=/host/sys --collector.syscalls --web.listen-address=127.0.0.1:9477 >/dev/null
podman exec -i "$NAME" /opt/sysmon-exporter/bin/python - syscalls < docker/image-check.py
echo "image-test: OK"

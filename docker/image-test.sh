#!/bin/sh
# Build the image with no registry (docker/build-image.sh) and check what it holds: no
# pip or setuptools for either Python in it. Then run it as on a host: host /proc and
# /sys bind-mounted read-only, read-only root filesystem, no capabilities, no network;
# scrape /metrics and ask the gRPC shim from inside the container. At the end the image
# is removed and no image of the build is left, dangling or not.
set -eu
cd "$(dirname "$0")/.."

# The image tag and container are this run's own (other checkouts may run this at the same time).
IMAGE=localhost/sysmon-exporter:image-test-$$
NAME=sysmon-image-test-$$
ULIMITS="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
# crun fails on this kind of host's hybrid cgroups; runc works.
podman() { command podman --runtime runc "$@"; }

started=$(date +%s)
images_before=$(podman images --all --quiet --no-trunc)
./docker/build-image.sh "$IMAGE"

cleanup() { podman rm --force --time 2 "$NAME" >/dev/null 2>&1 || true; }
trap 'cleanup; podman rmi --force "$IMAGE" >/dev/null 2>&1 || true' EXIT

# Neither the venv's Python nor the base's can run pip or import setuptools, and no file of
# theirs (or of ensurepip, which could bring them back) is left anywhere in the image.
works() { py=$1; shift; podman run --rm --network none $ULIMITS --entrypoint "$py" "$IMAGE" "$@" >/dev/null 2>&1; }
for py in /opt/sysmon-exporter/bin/python python3; do
    works "$py" -c 'import json' || { echo "image-test: $py does not run in the image" >&2; exit 1; }
    if works "$py" -m pip --version || works "$py" -c 'import setuptools' || works "$py" -m ensurepip --version; then
        echo "image-test: $py in the image still runs pip, imports setuptools or has ensurepip" >&2
        exit 1
    fi
done
leftovers=$(podman run --rm --network none $ULIMITS --user 0 --entrypoint /bin/sh "$IMAGE" -c \
    'find / -xdev \( -name pip -o -name "pip-*" -o -name "pip3*" -o -name setuptools -o -name "setuptools-*" -o -name pkg_resources \
     -o -name ensurepip -o -name python-wheels \) -print')
if [ -n "$leftovers" ]; then
    echo "image-test: pip/setuptools files left in the image:" $leftovers >&2
    exit 1
fi
echo "image-test: no pip, setuptools or ensurepip in the image (python -m pip, import setuptools, python -m ensurepip fail for both Pythons; no such file)"

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
cleanup
podman rmi "$IMAGE" >/dev/null
# Nothing of this build stays: not the image, not its build stage, no untagged step image.
# (An image that appeared since the start is one of this build's, or of a build run beside it.)
left=$(podman images --all --quiet --filter label=org.sysmon-exporter.stage=build)
new=$(podman images --all --quiet --no-trunc | grep -vxF -e "$images_before" || true)
if podman image exists "$IMAGE" || [ -n "$left" ] || [ -n "$new" ]; then
    echo "image-test: images left behind: $IMAGE, build-stage images '$left', new images '$new'" >&2
    exit 1
fi
echo "image-test: removed $IMAGE; no build-stage or dangling image of this build left"
echo "image-test: OK in $(( $(date +%s) - started )) s"

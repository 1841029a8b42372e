#!/bin/sh
# The test guest's image: the cached base (base.sh) plus this work tree's wheel, its systemd
# units (deploy/) and the test guest's files (guest/layer/), as an ext4 image made without
# mounting anything (mke2fs -d).
#
#   tests/vm/build.sh PYTHON CACHE    prints the image directory (vmlinuz, initrd.img, root.ext4)
#
# The image is redone when the base, the package, deploy/ or guest/layer/ change (a few seconds
# on top of the wheel build); the base only when what it depends on changes.
set -eu
# Only the resulting directory goes to stdout (fd 3); everything else to stderr.
exec 3>&1 1>&2
PY=$1
CACHE=$(mkdir -p "$2" && cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BASE=$("$HERE/base.sh" "$PY" "$CACHE")

KEY=$( { echo "$BASE"; cat "$0"; cd "$ROOT"; find exporter deploy pyproject.toml README.md "$HERE/guest/layer" -type f \
    -not -name '*.pyc' | sort | xargs sha256sum; } | sha256sum | cut -c1-16)
IMAGE="$CACHE/image-$KEY"
if [ -f "$IMAGE/done" ]; then
    echo "$IMAGE" >&3
    exit 0
fi
echo "vm-image: building $IMAGE"
for old in "$CACHE"/image-*; do [ -d "$old" ] && rm -rf "$old"; done
WORK="$IMAGE.work"
rm -rf "$WORK"
mkdir -p "$WORK/wheel"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheel" "$ROOT"
cp -a "$BASE/rootfs" "$WORK/rootfs"
R="$WORK/rootfs"
mkdir -p "$R/tmp/wheel"
cp "$WORK"/wheel/*.whl "$R/tmp/wheel/"
# The dependencies are in the base already: nothing is fetched, and a missing one fails here.
chroot "$R" python3 -m pip install --quiet --no-index --find-links /tmp/wheel --break-system-packages \
    --root-user-action=ignore 'sysmon-exporter[grpc]'
rm -rf "$R/tmp/wheel"
cp "$ROOT/deploy/sysmon-agent.service" "$ROOT/deploy/sysmon-exporter-sysmon-vm.service" "$R/etc/systemd/system/"
cp -r "$HERE/guest/layer/." "$R/"
chroot "$R" systemctl enable --quiet sysmon-agent.service sysmon-exporter-sysmon-vm.service sysmon-test-port.service
mkdir -p "$IMAGE"
mke2fs -q -F -t ext4 -L root -d "$R" "$IMAGE/root.ext4" 3G
cp "$BASE/vmlinuz" "$BASE/initrd.img" "$IMAGE/"
rm -rf "$WORK"
touch "$IMAGE/done"
echo "$IMAGE" >&3

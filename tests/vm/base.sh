#!/bin/sh
# The slow, cached part of the test guest: a Debian bookworm root made by mmdebstrap with
# systemd, python3, Debian's linux-image-amd64 (its modules in the root, its kernel and
# initramfs copied out beside it) and the exporter's runtime dependencies, installed from
# wheels prepared on the host (pip inside the build reaches no index).
#
#   tests/vm/base.sh PYTHON CACHE     prints the base directory (CACHE/base-KEY)
#
# KEY hashes what the base depends on: this script, tests/vm/guest/base/ and the
# dependency list in pyproject.toml. A base that is complete has a file named "done".
set -eu
# Only the resulting directory goes to stdout (fd 3); everything else to stderr.
exec 3>&1 1>&2
PY=$1
CACHE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# The runtime dependencies and the grpc extra (the in-guest exporter serves the gRPC shim).
DEPS=$("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(sorted(set(project["dependencies"]) | set(project["optional-dependencies"]["grpc"]))))
PYEOF
)
KEY=$( { cat "$0"; find "$HERE/guest/base" -type f | sort | xargs cat; echo "$DEPS"; } | sha256sum | cut -c1-16)
BASE="$CACHE/base-$KEY"
if [ -f "$BASE/done" ]; then
    echo "$BASE" >&3
    exit 0
fi
echo "vm-base: building $BASE (mmdebstrap bookworm, kernel, wheels)"
for old in "$CACHE"/base-*; do [ -d "$old" ] && rm -rf "$old"; done  # one base at a time: ~800 MB each
mkdir -p "$BASE/wheels"

# cp311 wheels for the guest's Python 3.11 (the host's venv is 3.11 as well).
echo "$DEPS" > "$BASE/requirements.txt"
"$PY" -m pip wheel --quiet --wheel-dir "$BASE/wheels" -r "$BASE/requirements.txt"

# linux-image-amd64 is installed into the root, so its modules (virtio_console, virtio_blk,
# ext4) are there and initramfs-tools builds the initramfs from them (guest/base/initramfs-tools:
# the handful of modules this guest needs, instead of every block driver).
mmdebstrap --quiet --variant=apt --format=directory \
    --include=systemd,systemd-sysv,udev,kmod,python3,python3-pip,linux-image-amd64 \
    --setup-hook="mkdir -p \"\$1/etc/initramfs-tools\" && cp -r '$HERE/guest/base/initramfs-tools/.' \"\$1/etc/initramfs-tools/\"" \
    --customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp '$BASE'/wheels/*.whl '$BASE/requirements.txt' \"\$1/tmp/wheels/\"" \
    --customize-hook='chroot "$1" python3 -m pip install --quiet --no-index --find-links /tmp/wheels --break-system-packages --root-user-action=ignore -r /tmp/wheels/requirements.txt' \
    --customize-hook='rm -rf "$1/tmp/wheels"' \
    --customize-hook="cp -r '$HERE/guest/base/root/.' \"\$1/\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service' \
    --customize-hook='echo sysmon-guest > "$1/etc/hostname"' \
    --customize-hook='chroot "$1" passwd -d root' \
    bookworm "$BASE/rootfs"
cp "$BASE"/rootfs/boot/vmlinuz-* "$BASE/vmlinuz"
cp "$BASE"/rootfs/boot/initrd.img-* "$BASE/initrd.img"
touch "$BASE/done"
echo "$BASE" >&3

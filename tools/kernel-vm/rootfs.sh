#!/bin/sh
# Build the cached Debian rootfs that every kernel VM boots (once; ~5 min).
#
#   rootfs.sh DIR WHEELS [SUITE]
#
# debootstrap a minimal SUITE (default bookworm: its python3.11 and glibc match
# this project's Python) with what the guest needs: python3 + venv headers and a
# C compiler (the C core is built in this rootfs by chroot, see vm.py), kmod and
# initramfs-tools (initrds are made per kernel by kernel.sh).  The project's
# runtime Python deps come from WHEELS, a wheelhouse filled on the host with
# `pip download`, so nothing inside a VM ever needs the network.
set -eu
DIR=${1:?usage: rootfs.sh DIR WHEELS [SUITE]}
WHEELS=${2:?usage: rootfs.sh DIR WHEELS [SUITE]}
SUITE=${3:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PKGS=python3,python3-venv,python3-dev,gcc,libc6-dev,cmake,ninja-build,kmod,initramfs-tools,busybox,zstd,xz-utils,procps

rm -rf "$DIR.tmp"
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$DIR.tmp" "$MIRROR"

# The venv with the project's runtime deps, installed offline from the wheelhouse.
mkdir -p "$DIR.tmp/opt/wheels"
cp "$WHEELS"/*.whl "$DIR.tmp/opt/wheels/"
chroot "$DIR.tmp" python3 -m venv /opt/venv
chroot "$DIR.tmp" /opt/venv/bin/pip install -q --no-index --find-links /opt/wheels \
    $(cd "$WHEELS" && cat requirements.txt)
rm -rf "$DIR.tmp/opt/wheels" "$DIR.tmp/var/cache/apt/archives"/*.deb

# Small initrds: only the modules needed to reach the root disk (ext4 on virtio-blk).
sed -i 's/^MODULES=.*/MODULES=list/' "$DIR.tmp/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$DIR.tmp/etc/initramfs-tools/modules"
echo "pybpfmem-vm" > "$DIR.tmp/etc/hostname"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"

#!/bin/sh
# Install one Debian kernel package into the VM rootfs (once per kernel).
#
#   kernel.sh ROOTFS DEB OUTDIR
#
# The package is unpacked, not dpkg-installed: its maintainer scripts and
# dependencies (bootloader hooks, a linux-base of a newer suite) have no use in a
# VM booted with -kernel.  Its modules go into ROOTFS/usr/lib/modules (the guest
# loads 9p from there), and vmlinuz, config and an initrd made by the rootfs's
# mkinitramfs go to OUTDIR.  Prints the kernel release.
set -eu
ROOTFS=${1:?usage: kernel.sh ROOTFS DEB OUTDIR}
DEB=${2:?usage: kernel.sh ROOTFS DEB OUTDIR}
OUT=${3:?usage: kernel.sh ROOTFS DEB OUTDIR}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$DEB" "$tmp"
vmlinuz=$(ls "$tmp"/boot/vmlinuz-*)
kver=${vmlinuz##*/vmlinuz-}
mods="$tmp/usr/lib/modules/$kver"
[ -d "$mods" ] || mods="$tmp/lib/modules/$kver"

rm -rf "$ROOTFS/usr/lib/modules/$kver"
mkdir -p "$ROOTFS/usr/lib/modules" "$OUT"
cp -a "$mods" "$ROOTFS/usr/lib/modules/"
cp "$tmp/boot/config-$kver" "$ROOTFS/boot/"
chroot "$ROOTFS" depmod "$kver"
chroot "$ROOTFS" mkinitramfs -o "/boot/initrd.img-$kver" "$kver" >&2
mv "$ROOTFS/boot/initrd.img-$kver" "$OUT/initrd.img"
cp "$vmlinuz" "$OUT/vmlinuz"
cp "$tmp/boot/config-$kver" "$OUT/config"
echo "$kver"

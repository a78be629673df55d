#!/usr/bin/env bash
# Installs what bigbro's tests need on a fresh Debian machine. Idempotent: a second run
# changes nothing and takes about a second.
#
# 1. Debian packages (needs root, and only when one is missing):
#    nftables, iproute2, ipvsadm   the real tools the tests use as oracles, on the host and
#                                  (through the shared root file system) in the guest;
#    qemu-system-x86               boots the test kernel (TCG, no KVM needed);
#    busybox-static                the guest's first-stage init and module loader;
#    kmod, xz-utils                depmod and xz, to prepare the kernel cache below;
#    chromium                      loads the status page headless (tests/api_ui.rs);
#    g++                           builds libFuzzer for the fuzz targets (tests/fuzz).
# 1b. cargo-fuzz (no root needed), the cargo subcommand that builds and runs the fuzz
#    targets, from crates.io into ~/.cargo/bin: about 2 to 4 minutes on 2 cores, once.
# 2. The test kernel (no root needed): the Debian kernel package linux-image-amd64 depends
#    on, fetched with `apt-get download` and unpacked into .cache/kernel/<version>/, keeping
#    only what the test bed loads (networking, netfilter, IPVS, 9p and virtio modules), with
#    modules.dep built by depmod and the uncompressed vmlinux extracted (qemu boots it
#    directly, which saves the guest about 3 s of decompression under TCG).
#    .cache/kernel/current points at the unpacked version; tests/testbed/ reads it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "tests/setup.sh: $1 needs root (run it with sudo)" >&2
    exit 1
  fi
}

# --- 1. Debian packages -------------------------------------------------------------------
PKGS="nftables iproute2 ipvsadm qemu-system-x86 busybox-static kmod xz-utils chromium g++"
missing=""
for p in $PKGS; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  need_root "installing the Debian packages$missing"
  apt-get update -qq
  # No recommends: qemu would otherwise pull in a desktop's worth of display libraries.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# --- 1b. cargo-fuzz -----------------------------------------------------------------------
# tests/run.sh runs every fuzz target briefly (tests/fuzz/run.sh). Pinned, with its own
# lock file, so a new release cannot change what CI builds.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "tests/setup.sh: installing cargo-fuzz 0.13.2"
  cargo install --locked --version 0.13.2 cargo-fuzz
fi

# --- 2. The test kernel -------------------------------------------------------------------
CACHE=.cache/kernel
if [ -e "$CACHE/current/.complete" ]; then
  echo "tests/setup.sh: test kernel ready: $(cat "$CACHE/current/.complete")"
  exit 0
fi

# Which kernel image the linux-image-amd64 metapackage currently means.
if ! meta=$(apt-cache show linux-image-amd64 2>/dev/null) || [ -z "$meta" ]; then
  need_root "refreshing the apt package lists (apt-get update)"
  apt-get update -qq
  meta=$(apt-cache show linux-image-amd64)
fi
pkg=$(printf '%s\n' "$meta" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n1)
if [ -z "$pkg" ]; then
  echo "tests/setup.sh: cannot tell which kernel linux-image-amd64 depends on" >&2
  exit 1
fi
kver=${pkg#linux-image-}

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # lets apt's unprivileged _apt user write the download when run as root
echo "tests/setup.sh: downloading $pkg"
(cd "$work" && apt-get download -q "$pkg" 2>&1 | grep -v 'Download is performed unsandboxed' || true)
deb=$(ls "$work"/*.deb 2>/dev/null | head -n1)
if [ -z "$deb" ]; then
  echo "tests/setup.sh: apt-get download $pkg produced no package" >&2
  exit 1
fi

echo "tests/setup.sh: unpacking $(basename "$deb")"
version=$(dpkg-deb -f "$deb" Version)
dpkg -x "$deb" "$work/full"
root="$work/$kver"
mods="lib/modules/$kver"
mkdir -p "$root/boot" "$root/$mods/kernel/fs" "$root/$mods/kernel/drivers/net"
cp "$work/full/boot/vmlinuz-$kver" "$work/full/boot/config-$kver" "$root/boot/"
cp "$work/full/$mods"/modules.builtin* "$work/full/$mods/modules.order" "$root/$mods/"
for d in net lib crypto arch fs/9p fs/netfs fs/fscache drivers/virtio; do
  cp -r "$work/full/$mods/kernel/$d" "$root/$mods/kernel/$d"
done
cp "$work/full/$mods"/kernel/drivers/net/*.ko "$root/$mods/kernel/drivers/net/"
rm -rf "$work/full" "$deb"
depmod -b "$root" "$kver"

# A bzImage is setup code followed by an xz stream holding vmlinux: find the stream and
# unpack it. xz complains about the bytes after the stream, so judge by the ELF magic.
vmlinuz="$root/boot/vmlinuz-$kver"
offset=$(LC_ALL=C grep -abo $'\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
if [ -n "$offset" ]; then
  tail -c +"$((offset + 1))" "$vmlinuz" | xz -dcq >"$root/vmlinux" 2>/dev/null || true
fi
if [ "$(head -c 4 "$root/vmlinux" 2>/dev/null | od -An -c | tr -d ' ')" != '177ELF' ]; then
  echo "tests/setup.sh: could not extract vmlinux; the guest boots the compressed image" >&2
  rm -f "$root/vmlinux"
fi

echo "$pkg $version" >"$root/.complete"
rm -rf "${CACHE:?}/$kver"
mv "$root" "$CACHE/$kver"
ln -sfn "$kver" "$CACHE/current"
echo "tests/setup.sh: test kernel ready: $pkg $version (in $CACHE/current)"

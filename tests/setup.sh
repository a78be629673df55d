#!/usr/bin/env bash
# Installs what bigbro's tests need on a fresh Debian machine. Idempotent: a second run
# changes nothing and takes about a second.
#
#   tests/setup.sh        everything the whole suite needs (tests/run.sh)
#   tests/setup.sh demo   only what the demo needs (tests/demo.sh): the test bed's packages
#                         (the first five lines of 1.) and the test kernel (2.)
#
# 1. Debian packages (needs root, and only when one is missing):
#    nftables, iproute2, ipvsadm   the real tools the tests use as oracles, on the host and
#                                  (through the shared root file system) in the guest;
#    qemu-system-x86               boots the test kernel (TCG, no KVM needed);
#    busybox-static                the guest's first-stage init and module loader;
#    kmod, xz-utils                depmod and xz, to prepare the kernel cache below;
#    --- the rest for the whole suite only:
#    resource-agents, curl         the OCF shell library and ocf-tester, and the agent's
#                                  HTTP client (tests/ops/ocf_*.rs);
#    libxml2-utils                 xmllint, which ocf-tester validates meta-data with;
#    shellcheck                    POSIX-shell lint of the agent;
#    systemd, man-db               systemd-analyze and systemd-sysusers for the unit's
#                                  tests, man for the package's man pages;
#    dpkg-dev                      what cargo-deb uses to work out the package's Depends;
#    pacemaker, corosync,          a one-node cluster in the guest drives the OCF agent
#    pacemaker-cli-utils           (tests/ops/ocf_pacemaker.rs). Installing them on a machine
#                                  that runs systemd would start corosync and pacemaker
#                                  there: this script disables them again at once.
#    chromium                      loads the status page headless (tests/api/ui.rs);
#    g++                           builds libFuzzer for the fuzz targets (tests/fuzz).
# 1b. For the whole suite only, tools that are not Debian packages of their own (no root
#    needed): checkbashisms,
#    taken alone out of devscripts' package into .cache/tools/ (devscripts would pull in
#    some fifty packages); cargo-deb, compiled from crates.io with `cargo install` (about
#    1.5 min of CPU, 5 min on a busy 2-core machine), for tests/ops/deb_package.rs; cargo-fuzz,
#    the cargo subcommand that builds and runs the fuzz targets, from crates.io into
#    ~/.cargo/bin: about 2 to 4 minutes on 2 cores, once.
# 2. The test kernel (no root needed): the Debian kernel package linux-image-amd64 depends
#    on, fetched with `apt-get download` and unpacked into .cache/kernel/<version>/, keeping
#    only what the test bed loads (networking, netfilter, IPVS, 9p and virtio modules, and
#    overlayfs for the writable root systemd boots on in tests/ops/systemd_kernel.rs), with
#    modules.dep built by depmod and the uncompressed vmlinux extracted (qemu boots it
#    directly, which saves the guest about 3 s of decompression under TCG).
#    .cache/kernel/current points at the unpacked version; tests/support/testbed/ reads it.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in
all | demo) ;;
*)
  echo "usage: tests/setup.sh [demo]   (no argument: everything the whole suite needs)" >&2
  exit 2
  ;;
esac

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "tests/setup.sh: $1 needs root (run it with sudo)" >&2
    exit 1
  fi
}

# --- 1. Debian packages -------------------------------------------------------------------
PKGS="nftables iproute2 ipvsadm qemu-system-x86 busybox-static kmod xz-utils"
if [ "$what" = all ]; then
  PKGS="$PKGS resource-agents curl libxml2-utils shellcheck systemd man-db dpkg-dev
    pacemaker corosync pacemaker-cli-utils
    chromium g++"
fi
missing=""
for p in $PKGS; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  need_root "installing the Debian packages$missing"
  apt-get update -qq
  # No recommends: qemu would otherwise pull in a desktop's worth of display libraries.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  case "$missing" in
  *pacemaker* | *corosync*)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now pacemaker corosync >/dev/null 2>&1 || true
    fi
    ;;
  esac
fi

# --- 1b. Tools that are not packages of their own (the whole suite only) --------------------
TOOLS=.cache/tools
if [ "$what" = all ] && [ ! -x "$TOOLS/checkbashisms" ]; then
  mkdir -p "$TOOLS"
  tools_work=$(mktemp -d "$TOOLS/.download.XXXXXX")
  chmod 755 "$tools_work"
  echo "tests/setup.sh: fetching checkbashisms (from devscripts' package)"
  if (cd "$tools_work" && apt-get download -q devscripts >/dev/null 2>&1) &&
    dpkg-deb --fsys-tarfile "$tools_work"/devscripts_*.deb |
    tar -xO ./usr/bin/checkbashisms >"$tools_work/checkbashisms"; then
    chmod 755 "$tools_work/checkbashisms"
    mv "$tools_work/checkbashisms" "$TOOLS/checkbashisms"
  else
    echo "tests/setup.sh: could not fetch devscripts; the agent's test skips checkbashisms" >&2
  fi
  rm -rf "$tools_work"
fi
# rustfmt and clippy: tests/run.sh checks with both. A rustup toolchain of the minimal
# profile lacks them.
if [ "$what" = all ] && command -v rustup >/dev/null &&
  ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  echo "tests/setup.sh: adding the rustfmt and clippy components (rustup)"
  rustup component add rustfmt clippy
fi
if [ "$what" = all ] && command -v cargo >/dev/null && ! cargo deb --version >/dev/null 2>&1; then
  echo "tests/setup.sh: installing cargo-deb (cargo install cargo-deb --locked; a few minutes)"
  cargo install --quiet --locked cargo-deb
fi

# --- 1b. cargo-fuzz -----------------------------------------------------------------------
# tests/run.sh runs every fuzz target briefly (tests/fuzz/run.sh). Pinned, with its own
# lock file, so a new release cannot change what CI builds.
if [ "$what" = all ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "tests/setup.sh: installing cargo-fuzz 0.13.2"
  cargo install --locked --version 0.13.2 cargo-fuzz
fi

# --- 2. The test kernel -------------------------------------------------------------------
CACHE=.cache/kernel
# A cache unpacked before overlayfs was kept (tests/ops/systemd_kernel.rs needs it) is redone.
if [ -e "$CACHE/current/.complete" ] &&
  [ -n "$(find -L "$CACHE/current/lib/modules" -path '*/kernel/fs/overlayfs/*' -print -quit)" ]; then
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
for d in net lib crypto arch fs/9p fs/netfs fs/fscache fs/overlayfs drivers/virtio; do
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

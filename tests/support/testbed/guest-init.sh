#!/bin/busybox sh
# The test bed guest's first stage, /init in the initramfs (tests/support/testbed/image.rs).
# Loads virtio and 9p, mounts the results share (written by the host: boot.conf, run.sh)
# and the host's root file system read-only, loads the networking modules from the host's
# kernel cache, gives the host root fresh /proc, /sys, /dev and tmpfs on /tmp, /run and
# /var/tmp, then chroots into it to run run.sh, and powers off. It must never write to the
# host's file systems except the results share. Any failure is reported in init.log and
# ends the VM: the host then fails the tests with that log and the console.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

die() {
    echo "testbed init: $*"
    echo "testbed init: $*" >>/results/init.log 2>/dev/null
    poweroff -f
}

for m in $(cat /boot/modules); do
    insmod "/boot/$m" || die "insmod $m failed"
done

# 9p: a large msize moves big test binaries in few round trips.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none results /results ||
    die "cannot mount the results share"
. /results/boot.conf || die "cannot read boot.conf"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host ||
    die "cannot mount the host root file system"

# Modules come from the host's kernel cache. The kernel's own module autoloading (for
# example an ipvsadm scheduler or an nft expression not loaded here) runs this busybox's
# modprobe, which finds them through the same link.
rm -rf /lib/modules
ln -s "/host$MODULES_DIR" /lib/modules || die "cannot link $MODULES_DIR"
for m in $MODULES; do
    modprobe "$m" || die "modprobe $m failed"
done

mount -t proc proc /host/proc || die "cannot mount /proc"
mount -t sysfs sysfs /host/sys || die "cannot mount /sys"
mount -t devtmpfs devtmpfs /host/dev || die "cannot mount /dev"
mkdir -p /host/dev/shm
for d in /host/tmp /host/run /host/var/tmp /host/dev/shm; do
    mount -t tmpfs -o mode=1777 tmpfs "$d" || die "cannot mount tmpfs on $d"
done
mkdir -p /host/dev/pts && mount -t devpts devpts /host/dev/pts
mkdir -p /host/run/testbed && mount -o bind /results /host/run/testbed ||
    die "cannot bind the results share"

echo booted >/results/booted
chroot /host /bin/sh /run/testbed/run.sh >/results/run.log 2>&1
echo "$?" >/results/run.rc
sync
poweroff -f

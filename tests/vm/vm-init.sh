#!/bin/sh
# SPDX-License-Identifier: MIT
# /init of the VM lane's initramfs (tests/vm/run-in-vm.sh): load the modules,
# mount the host root read-only over 9p, chroot into it with fresh tmpfs and
# kernel filesystems, run the command from the run directory, report its
# exit status on the console and in the shared folder, power off.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 1 >/proc/sys/kernel/printk

for m in $(cat /modules.order); do
	insmod /lib/modules/$m || echo "jitwg-vm: insmod $m failed"
done

run= out= keep=
for a in $(cat /proc/cmdline); do
	case "$a" in
	jitwg.run=*) run=${a#jitwg.run=} ;;
	jitwg.keep=*) keep=${a#jitwg.keep=} ;;
	jitwg.out=*) out=${a#jitwg.out=} ;;
	esac
done

R=/mnt/root
fail() {
	echo "jitwg-vm: $*"
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $R ||
	fail "cannot mount the host root over 9p"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p /dev/pts 2>/dev/null
mount -t devpts devpts $R/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $R/dev/shm 2>/dev/null
# The tree (and the caller's directory) may live under /tmp or /run, as a
# CI clone can: keep the host's copies reachable before covering them.
mkdir -p /hosttmp /hostrun
mount -o bind $R/tmp /hosttmp
mount -o bind $R/run /hostrun
mount -t tmpfs tmpfs $R/tmp
mount -t tmpfs tmpfs $R/run
for k in $(echo "$keep" | tr , ' '); do
	case "$k" in
	/tmp/*) mkdir -p $R$k && mount -o bind,ro /hosttmp/${k#/tmp/} $R$k ;;
	/run/*) mkdir -p $R$k && mount -o bind,ro /hostrun/${k#/run/} $R$k ;;
	esac || fail "cannot keep $k visible in the guest"
done
mount -t bpf bpf $R/sys/fs/bpf
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
# Last: the shared folder may live under /tmp or /run (fresh tmpfs, so
# the mount point is made here); elsewhere it exists on the host already.
mkdir -p $R$out 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmout $R$out ||
	fail "cannot mount the shared folder at $out"
ip link set lo up
hostname jitwg-vm

echo "=== jitwg-vm: start ==="
# The command file is bash (printf %q quoting).
chroot $R /bin/bash $run/cmd </dev/null 2>&1
rc=$?
echo "$rc" >$R$out/.rc
sync
echo "=== jitwg-vm: exit $rc ==="
poweroff -f
sleep 5
echo o >/proc/sysrq-trigger

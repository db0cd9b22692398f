#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-in-vm.sh CMD [ARG...]: boot Debian's stock kernel (the installed
# linux-image with a wireguard module) under qemu TCG, run CMD inside it and
# exit with CMD's exit status. The guest sees this host's root filesystem
# read-only over 9p, chrooted, with the same PATH and working directory, so
# build/ binaries and host libraries run unchanged against the *kernel's*
# WireGuard (which this host lacks).
#
# Inside the guest:
#   - cwd is the directory run-in-vm.sh was called from; the tree is read-only
#   - /tmp, /run (so /var/run/wireguard, /run/netns) are fresh tmpfs
#   - proc, sysfs, devtmpfs, bpf (/sys/fs/bpf) are mounted; modules wireguard,
#     veth, dummy are loaded; `ip netns`, BPF and XDP work
#   - $VM_OUT is a writable directory shared with the host; its path is the
#     same on both sides, so files written there are readable afterwards
#     (keep one with VM_OUT=DIR on the host; otherwise it is removed)
#   - environment: PATH, HOME, TERM, VM_OUT, JITWG_* and any variable named in
#     VM_ENV="NAME1 NAME2"
# CMD's stdout and stderr come back on the console (serial port) and are
# printed here as they arrive.
#
# Settings (environment): VM_KERNEL (version, default: the newest in /boot
# with a wireguard module), VM_MEM (MiB, 2048), VM_SMP (2), VM_TIMEOUT (s, 900),
# VM_QUIET=1 (only CMD's output, no boot progress lines on stderr).
# Exit status: CMD's, or 125 if the VM could not boot or CMD's status was
# never reported (kernel panic, timeout).
set -u

die() {
	echo "run-in-vm: $*" >&2
	exit 125
}
note() { [ "${VM_QUIET:-0}" = 1 ] || echo "run-in-vm: $*" >&2; }

[ $# -ge 1 ] || die "usage: run-in-vm.sh CMD [ARG...]"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${JITWG_BUILD:-$ROOT/build}
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
BUSYBOX=$(command -v busybox) || die "busybox missing (apt-get install busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	[ -x /bin/busybox ] || die "busybox must be static (busybox-static)"

# The kernel: the newest installed image whose modules include wireguard.
pick_kernel() {
	local v
	for img in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
		v=${img#/boot/vmlinuz-}
		if modprobe -S "$v" --show-depends wireguard >/dev/null 2>&1; then
			echo "$v"
			return 0
		fi
	done
	return 1
}
KVER=${VM_KERNEL:-$(pick_kernel)} ||
	die "no /boot/vmlinuz-* with a wireguard module (apt-get install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -r "$KERNEL" ] || die "cannot read $KERNEL"

# The initramfs: static busybox, the modules in dependency order, /init.
# Rebuilt when missing or older than this script or the kernel's modules.
MODULES="wireguard veth dummy 9p 9pnet_virtio virtio_pci"
VMDIR=$BUILD/vm/$KVER
INITRD=$VMDIR/initramfs.cpio
build_initrd() {
	local stage mods m f base
	stage=$(mktemp -d "$BUILD/vm/stage.XXXXXX") || return 1
	mkdir -p "$stage"/{bin,dev,proc,sys,mnt/root,mnt/out,lib/modules}
	cp "$BUSYBOX" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	mods=$(for m in $MODULES; do
		modprobe -S "$KVER" --show-depends "$m" || exit 1
	done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++') || {
		rm -rf "$stage"
		return 1
	}
	: >"$stage/modules.order"
	for f in $mods; do
		base=$(basename "$f")
		case "$f" in
		*.ko.xz) xz -dc "$f" >"$stage/lib/modules/${base%.xz}" ;;
		*.ko.zst) zstd -qdc "$f" >"$stage/lib/modules/${base%.zst}" ;;
		*.ko.gz) gzip -dc "$f" >"$stage/lib/modules/${base%.gz}" ;;
		*) cp "$f" "$stage/lib/modules/$base" ;;
		esac || {
			rm -rf "$stage"
			return 1
		}
		echo "${base%.ko*}.ko" >>"$stage/modules.order"
	done
	cp "$HERE/vm-init.sh" "$stage/init"
	chmod +x "$stage/init"
	# Concurrent runs may build at once: each writes its own file, the
	# rename is atomic.
	local tmpf
	tmpf=$(mktemp "$INITRD.XXXXXX") || return 1
	(cd "$stage" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) >"$tmpf" &&
		mv "$tmpf" "$INITRD"
	local rc=$?
	rm -f "$tmpf"
	rm -rf "$stage"
	return $rc
}
mkdir -p "$VMDIR" || die "cannot create $VMDIR"
if [ ! -s "$INITRD" ] || [ "$HERE/vm-init.sh" -nt "$INITRD" ] ||
	[ "$0" -nt "$INITRD" ] || [ "/lib/modules/$KVER/modules.dep" -nt "$INITRD" ]; then
	note "building initramfs for $KVER"
	build_initrd || die "cannot build the initramfs for $KVER"
fi

# The run directory: the command, its environment, its status. Shared
# writable over 9p and mounted in the guest at the same path.
RUN=$(mktemp -d "$BUILD/vm/run.XXXXXX") || die "cannot create a run directory"
if [ -n "${VM_OUT:-}" ]; then
	mkdir -p "$VM_OUT" || die "cannot create VM_OUT=$VM_OUT"
	OUT=$(cd "$VM_OUT" && pwd)
	KEEP_OUT=1
else
	OUT=$RUN/out
	mkdir -p "$OUT"
	KEEP_OUT=0
fi
cleanup() {
	[ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

{
	echo "export PATH=$(printf %q "$PATH")"
	echo "export HOME=/root TERM=dumb VM_OUT=$(printf %q "$OUT")"
	echo "export JITWG_IN_VM=1 WG_COLOR_MODE=never"
	for v in $(compgen -e | grep '^JITWG_') ${VM_ENV:-}; do
		[ -n "${!v+x}" ] && echo "export $v=$(printf %q "${!v}")"
	done
	echo "cd $(printf %q "$PWD") || exit 126"
	printf 'exec'
	printf ' %q' "$@"
	echo
} >"$RUN/cmd"

note "booting $KVER (qemu tcg) for: $*"
# The guest prints a start marker before CMD and the exit marker after it;
# everything else on the console (firmware, kernel) is dropped.
START_MARK="=== jitwg-vm: start ==="
EXIT_MARK="=== jitwg-vm: exit"
timeout -k 10 "${VM_TIMEOUT:-900}" qemu-system-x86_64 \
	-accel tcg -cpu max -m "${VM_MEM:-2048}" -smp "${VM_SMP:-2}" \
	-nodefaults -no-user-config -display none -no-reboot \
	-serial stdio -monitor none \
	-kernel "$KERNEL" -initrd "$INITRD" \
	-append "console=ttyS0 quiet loglevel=1 panic=-1 jitwg.run=$RUN jitwg.out=$OUT jitwg.keep=$ROOT,$PWD" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$OUT",mount_tag=vmout,security_model=none,multidevs=remap \
	</dev/null 2>"$RUN/qemu.err" | tr -d '\r' | {
	started=0 rc=
	while IFS= read -r line; do
		if [ $started = 0 ]; then
			case "$line" in *"$START_MARK"*) started=1 ;; esac
			echo "$line" >>"$RUN/boot.log"
			continue
		fi
		[ -n "$rc" ] && continue # after the exit marker: power-off noise
		case "$line" in
		*"$EXIT_MARK"*)
			rc=${line##*"$EXIT_MARK" }
			rc=${rc%% *}
			continue
			;;
		esac
		printf '%s\n' "$line"
	done
	echo "${rc:-}" >"$RUN/rc.console"
	[ $started = 1 ] || { echo "--- console before the guest started:"; tail -30 "$RUN/boot.log"; } >&2
}
qrc=${PIPESTATUS[0]}
rc=$(cat "$RUN/rc.console" 2>/dev/null)
[ -z "$rc" ] && [ -s "$OUT/.rc" ] && rc=$(cat "$OUT/.rc")
rm -f "$OUT/.rc"
[ "$KEEP_OUT" = 1 ] || true
if [ -z "$rc" ] || ! [ "$rc" -eq "$rc" ] 2>/dev/null; then
	[ -s "$RUN/qemu.err" ] && sed 's/^/qemu: /' "$RUN/qemu.err" >&2
	[ "$qrc" = 124 ] && die "timed out after ${VM_TIMEOUT:-900}s"
	die "the VM did not report CMD's exit status (qemu exit $qrc)"
fi
note "exit status $rc"
exit "$rc"

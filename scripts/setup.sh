#!/usr/bin/env bash
# Install the Debian packages jitwg needs to build, test and demo, if any are
# missing. Idempotent and quiet when everything is present; `make test` and
# `make demo` run it first so a fresh machine needs nothing by hand.
set -euo pipefail

PKGS=(
	# build
	make clang llvm gcc pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev
	libsodium-dev libb2-dev liblmdb-dev lmdb-utils libcurl4-openssl-dev
	libmnl-dev libjson-c-dev libclang-rt-14-dev libmicrohttpd-dev
	# run and test
	iproute2 iputils-ping kmod procps psmisc python3 wireguard-go
	wireguard-tools tcpdump ca-certificates ethtool
	# install and systemd (tests/test_install.sh: systemd-analyze, setpriv,
	# capsh); libxdp's dispatcher (--xdp-mode multi) and xdp-filter
	systemd util-linux libcap2-bin libxdp-dev xdp-tools
	# metrics tests: promtool and a real Prometheus server
	prometheus
	# benchmark report plots (make bench); jitwgd's flushes traced by
	# make bench-fc-timeline (perf trace)
	gnuplot-nox linux-perf
	# kernel WireGuard VM lane (tests/vm)
	qemu-system-x86 linux-image-amd64 busybox-static
)

missing=()
for p in "${PKGS[@]}"; do
	case "$p" in \#*) continue ;; esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing packages: ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# BPF filesystem, needed for pinned maps (bpftool deployment) and tests.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi

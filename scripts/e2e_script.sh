# Sourced first by the scripts that build the end-to-end topology of
# tests/e2e_lib.sh (scripts/demo.sh, scripts/bench_e2e.sh): repository root,
# the test libraries, cleanup of everything they start (on any exit), root
# and bpffs. SCRIPT names the caller in messages.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export JITWG_ROOT=$ROOT JITWG_RUNID=${JITWG_RUNID:-$$}
. tests/lib.sh
. tests/e2e_lib.sh
trap lib_cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "$SCRIPT: run as root (namespaces, XDP)" >&2; exit 1; }
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks
# (getconf CLK_TCK a second), 0 once it is gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

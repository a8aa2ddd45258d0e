#!/usr/bin/env bash
# The C library without Python, as CI runs it (.ci/run), on the host and on aarch64 under emulation:
#
#   1. host build with PYRT_THREADS=OFF (no thread pool, no pthreads): the native tests (tests/native: every
#      kernel at every level of this CPU against its reference, the golden files through the C API), the C
#      example, and the installed library consumed through find_package and pkg-config (tests/install);
#   2. aarch64 cross-build (cmake/toolchains/aarch64-linux-gnu.cmake, threads on) and the same CTest suite
#      under qemu-aarch64: QEMU_CPU=max (levels ref, neon, neon_dot), then the level-dependent tests again
#      as QEMU_CPU=cortex-a53 (a Cortex-A53 has no dot product: ref and neon).
#
# Needs cmake, ninja, a host C/C++ compiler and Debian's g++-aarch64-linux-gnu, qemu-user and pkg-config;
# installs the Debian packages with apt-get when they are missing (as root, or with sudo).
#   tools/cross_test.sh [build-root]        (default build/cross)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-build/cross}
jobs=$(nproc 2>/dev/null || echo 2)

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross_test: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

echo "== host ($(uname -m)), PYRT_THREADS=OFF"
cmake -S . -B "$root/host" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPYRT_BUILD_TESTS=ON -DPYRT_BUILD_PYTHON=OFF \
  -DPYRT_THREADS=OFF >/dev/null
cmake --build "$root/host" -j "$jobs" >/dev/null
ctest --test-dir "$root/host" --output-on-failure

echo "== aarch64 (cross-built, run under qemu-aarch64)"
cmake -S . -B "$root/aarch64" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPYRT_BUILD_TESTS=ON -DPYRT_BUILD_PYTHON=OFF \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake >/dev/null
cmake --build "$root/aarch64" -j "$jobs" >/dev/null
echo "-- QEMU_CPU=max"
QEMU_CPU=max ctest --test-dir "$root/aarch64" --output-on-failure
# A Cortex-A53 changes only what depends on the ISA level: the kernel and golden tests (not the bare-metal
# runtime, the C example, the installed library or the all-at-ref rerun, which run the same code again).
echo "-- QEMU_CPU=cortex-a53"
QEMU_CPU=cortex-a53 ctest --test-dir "$root/aarch64" --output-on-failure -E "micro|c_example|install|all_at_ref"
echo "cross_test: host and aarch64 passed"

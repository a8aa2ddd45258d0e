#!/usr/bin/env bash
# Builds the loader fuzzer (clang + libFuzzer + ASan/UBSan) in build/fuzz and runs it for SECONDS
# (default 60) from a scratch copy of the seed corpus fuzz/corpus (which is never modified).
#
#   fuzz/run.sh [SECONDS]
#
# Exit status: 0 if libFuzzer found nothing; 3 if no clang with libFuzzer is available (nor installable);
# any other non-zero status on a build failure or a finding (crash, leak, timeout, out-of-memory), whose
# reproducer is listed (reproduce: build/fuzz/fuzz/pyrt_load_fuzzer FILE).
# Environment: FUZZ_WORK (scratch dir, default build/fuzz/work), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: fuzz/run.sh [SECONDS]   (a positive integer; default 60)" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="build/fuzz"
work="${FUZZ_WORK:-$build/work}"

# ---- a clang with libFuzzer --------------------------------------------------------------------------
find_clang() {
  local v
  for cxx in clang++ clang++-14 clang++-15 clang++-16 clang++-17 clang++-18 clang++-19; do
    if command -v "$cxx" >/dev/null 2>&1; then
      v="${cxx#clang++}"  # "" or "-NN"
      if command -v "clang$v" >/dev/null 2>&1; then
        CXX_BIN="$(command -v "$cxx")"
        CC_BIN="$(command -v "clang$v")"
        return 0
      fi
    fi
  done
  return 1
}

if ! find_clang; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "fuzz: no clang++ found; installing clang-14 libclang-rt-14-dev with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev; then
      apt-get update || true
      apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev || true
    fi
    find_clang || { echo "fuzz: clang++ still not found after installing" >&2; exit 3; }
  else
    echo "fuzz: needs clang++ (clang++, clang++-14 .. clang++-19) with libFuzzer (libclang-rt-NN-dev)" >&2
    exit 3
  fi
fi
echo "fuzz: compiler $CXX_BIN"

# ---- build --------------------------------------------------------------------------------------------
generator=()
if command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
if [ -f "$build/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*=$CXX_BIN\$" "$build/CMakeCache.txt"; then
  echo "fuzz: $build was configured with another compiler; reconfiguring from scratch" >&2
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
if [ -f "$build/CMakeCache.txt" ]; then
  generator=()  # an existing build dir keeps the generator it was made with
fi
CC="$CC_BIN" CXX="$CXX_BIN" cmake -S . -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYRT_BUILD_FUZZER=ON -DPYRT_BUILD_PYTHON=OFF -DPYRT_BUILD_CAPI_SHARED=OFF
cmake --build "$build" --target pyrt_load_fuzzer
fuzzer="$build/fuzz/pyrt_load_fuzzer"
[ -x "$fuzzer" ] || { echo "fuzz: $fuzzer was not built" >&2; exit 1; }

# ---- run ----------------------------------------------------------------------------------------------
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp fuzz/corpus/* "$work/corpus/" 2>/dev/null || echo "fuzz: fuzz/corpus is empty; starting from nothing" >&2
log="$work/fuzz.log"
seeds=$(find "$work/corpus" -type f | wc -l)
echo "fuzz: running $fuzzer for ${seconds}s from $seeds seeds (scratch: $work)"

start=$SECONDS
set +e
# Single process (no -jobs/-workers). The leak checker (ASan's LeakSanitizer) is on by default.
# shellcheck disable=SC2086
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  "$fuzzer" "$work/corpus" \
  -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - start))

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
final=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
cov=$(grep -o 'cov: [0-9]*' <<<"$final" | grep -o '[0-9]*' || true)
ft=$(grep -o 'ft: [0-9]*' <<<"$final" | grep -o '[0-9]*' || true)
eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
units=$(find "$work/corpus" -type f | wc -l)
bytes=$(find "$work/corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
artifacts=$(find "$work/artifacts" -type f | sort)

if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
  echo "fuzz: FAILED (libFuzzer exit status $status); reproducers:" >&2
  if [ -n "$artifacts" ]; then
    while IFS= read -r f; do echo "  $f   (reproduce: $fuzzer $f)" >&2; done <<<"$artifacts"
  else
    echo "  (none written; see $log)" >&2
  fi
fi
echo "fuzz: ${execs:-?} executions in ${elapsed}s (${eps:-?} exec/s), cov ${cov:-?} ft ${ft:-?}," \
  "corpus $units files / $bytes bytes (from $seeds seeds), status $([ "$status" -eq 0 ] && echo ok || echo FAILED)"
if [ "$status" -ne 0 ]; then
  exit "$status"
elif [ -n "$artifacts" ]; then
  exit 1
fi

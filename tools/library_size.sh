#!/usr/bin/env bash
# Size of the stripped static C library, libpyruntime.a, for x86-64 and aarch64 at -Os and -O2, and what
# takes the space (the largest objects, by text + data, grouped by directory). No Python, no examples.
#   tools/library_size.sh [build-root]      (default build/size; needs g++-aarch64-linux-gnu for aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-build/size}
jobs=$(nproc 2>/dev/null || echo 2)
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
for arch in x86_64 aarch64; do
  tc=() strip=strip size=size
  if [ "$arch" = aarch64 ]; then
    command -v aarch64-linux-gnu-g++ >/dev/null || { echo "no aarch64 cross compiler: skipping aarch64"; continue; }
    tc=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake)
    strip=aarch64-linux-gnu-strip size=aarch64-linux-gnu-size
  fi
  for opt in Os O2; do
    dir="$root/$arch-$opt"
    cmake -S . -B "$dir" "${gen[@]}" "${tc[@]}" -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-$opt -DNDEBUG" \
      "-DCMAKE_C_FLAGS=-$opt -DNDEBUG" -DPYRT_BUILD_PYTHON=OFF -DPYRT_BUILD_CAPI_SHARED=OFF >/dev/null
    cmake --build "$dir" -j "$jobs" --target pyrt_core >/dev/null
    cp "$dir/libpyruntime.a" "$dir/libpyruntime.stripped.a"
    $strip --strip-unneeded "$dir/libpyruntime.stripped.a"
    bytes=$(stat -c %s "$dir/libpyruntime.stripped.a")
    code=$($size -t "$dir/libpyruntime.stripped.a" | awk '/\(TOTALS\)/ { print $1 + $2 }')
    echo "== $arch -$opt: stripped libpyruntime.a $bytes bytes (code and data of its objects: $code bytes)"
    # text + data of each object, summed by the directory of its source (kernels/x86, runtime/ops, ...)
    $size -t "$dir/libpyruntime.stripped.a" 2>/dev/null | awk '
      $6 ~ /\.o$/ { n = $6; sub(/\.(c|cpp)\.o$/, "", n); obj[n] = $1 + $2 }
      END { for (o in obj) print obj[o], o }' | sort -rn > "$dir/objects.txt"
    find csrc -name '*.cpp' -o -name '*.c' | while read -r src; do
      printf '%s %s\n' "$(basename "${src%.*}")" "$(dirname "${src#csrc/}")"
    done | sort -u > "$dir/dirs.txt"
    awk 'NR == FNR { d[$1] = $2; next } { g = ($2 in d) ? d[$2] : "?"; s[g] += $1; t += $1 }
         END { for (k in s) printf "   %-16s %8d bytes  %4.1f%%\n", k, s[k], 100 * s[k] / t }' \
      "$dir/dirs.txt" "$dir/objects.txt" | sort -k2 -rn
    echo "   largest objects:"
    head -6 "$dir/objects.txt" | awk '{ printf "     %-28s %8d\n", $2, $1 }'
  done
done

#!/usr/bin/env bash
# Incremental developer build: compiles the C++ core into build/dev and links the results into the
# source tree (pyruntime/_core*.so, pyruntime/lib/libpyruntime.so) so `python -m pytest` runs in place.
# Serialized with flock so concurrent callers do not step on each other.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
exec 9>build/.dev.lock
flock 9
if [ ! -f build/dev/build.ninja ]; then
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYRT_BUILD_PYTHON=ON \
    -DPython_EXECUTABLE="$(command -v python3)" \
    -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
fi
ninja -C build/dev
so=$(ls build/dev/_core*.so)
ln -sf "../$so" pyruntime/
mkdir -p pyruntime/lib
ln -sf ../../build/dev/libpyruntime.so pyruntime/lib/

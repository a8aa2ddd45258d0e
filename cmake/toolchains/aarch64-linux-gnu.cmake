# Cross-build for 64-bit ARM Linux with Debian's cross compilers (apt-get install g++-aarch64-linux-gnu) and
# run what is built under user-mode emulation (apt-get install qemu-user): CTest and the C example then run
# the aarch64 binaries through qemu-aarch64, with the cross C library as its root.
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DPYRT_BUILD_TESTS=ON -DPYRT_BUILD_PYTHON=OFF && cmake --build build/aarch64 && ctest --test-dir build/aarch64
#
# The CPU qemu emulates comes from the environment: QEMU_CPU=max has every extension (the dot product, so
# the neon_dot level runs), QEMU_CPU=cortex-a53 has none (neon only). tools/cross_test.sh runs both.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(PYRT_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "prefix of the cross tools")
set(CMAKE_C_COMPILER ${PYRT_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${PYRT_CROSS_PREFIX}g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
find_program(PYRT_QEMU_AARCH64 qemu-aarch64)
if(PYRT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PYRT_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu)
endif()

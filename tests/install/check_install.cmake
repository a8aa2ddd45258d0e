# The installed C library, consumed as C projects consume one (a CTest of tests/native/CMakeLists.txt):
#   1. cmake --install BUILD --prefix WORK/prefix
#   2. the tree holds the header, libpyruntime.a, libpyruntime.so with its SONAME links, the CMake package
#      and pyruntime.pc
#   3. tests/install/consumer configured with find_package(pyruntime CONFIG), built, its shared and static
#      programs run on MODEL
#   4. the same main.c compiled by hand with `pkg-config --cflags --libs pyruntime` (shared) and
#      `pkg-config --static --libs` against libpyruntime.a, and run
# Arguments: -DBUILD= -DWORK= -DMODEL= -DSOURCE=<repo> -DCC= [-DTOOLCHAIN=<toolchain file>] [-DEMULATOR=a|b|c]
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ ${ARGN}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
foreach(f include/pyruntime.h include/pyruntime_micro.h lib/libpyruntime.a lib/libpyruntime.so lib/libpyruntime.so.0
          lib/cmake/pyruntime/pyruntime-config.cmake lib/cmake/pyruntime/pyruntime-config-version.cmake
          lib/pkgconfig/pyruntime.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "the installed tree has no ${f}")
  endif()
endforeach()

# find_package(pyruntime CONFIG)
set(toolchain_arg)
if(TOOLCHAIN)
  set(toolchain_arg -DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE}/tests/install/consumer -B ${WORK}/consumer ${toolchain_arg}
    -DCMAKE_PREFIX_PATH=${prefix} -Dpyruntime_DIR=${prefix}/lib/cmake/pyruntime -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK}/consumer)
foreach(exe consumer_default consumer_static)
  run(${EMULATOR} ${WORK}/consumer/${exe} ${MODEL})
  if(NOT last_output MATCHES "outputs, sum")
    message(FATAL_ERROR "${exe} printed nothing like the outputs")
  endif()
endforeach()

# pkg-config, shared then static
set(ENV{PKG_CONFIG_LIBDIR} ${prefix}/lib/pkgconfig)
run(pkg-config --cflags --libs pyruntime)
separate_arguments(shared_flags UNIX_COMMAND "${last_output}")
run(pkg-config --static --libs pyruntime)
separate_arguments(static_libs UNIX_COMMAND "${last_output}")
list(REMOVE_ITEM static_libs -lpyruntime)
run(${CC} ${SOURCE}/tests/install/consumer/main.c ${shared_flags} -Wl,-rpath,${prefix}/lib -o ${WORK}/pc_shared)
run(${CC} ${SOURCE}/tests/install/consumer/main.c -I${prefix}/include ${prefix}/lib/libpyruntime.a ${static_libs}
    -o ${WORK}/pc_static)
foreach(exe pc_shared pc_static)
  run(${EMULATOR} ${WORK}/${exe} ${MODEL})
endforeach()
message("installed tree, find_package and pkg-config consumers: ok")

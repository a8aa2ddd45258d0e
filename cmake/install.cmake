# pyruntime: where `cmake --install` puts the C library.
#
# Inside a Python wheel (scikit-build-core sets SKBUILD) only the shared library and the header go into the
# package (pyruntime/lib, pyruntime/include), unversioned, as the cffi tests and users of the wheel load it.
# Otherwise the tree is a C library as C and C++ projects consume one:
#
#   <prefix>/include/pyruntime.h, pyruntime_micro.h
#   <prefix>/lib/libpyruntime.a                       static (needs the C++ runtime, libm, pthreads)
#   <prefix>/lib/libpyruntime.so -> .so.0 -> .so.0.1.0 shared, SONAME libpyruntime.so.<PYRT_ABI_VERSION>
#   <prefix>/lib/cmake/pyruntime/pyruntime-config.cmake (+ -version, -targets): find_package(pyruntime CONFIG)
#   <prefix>/lib/pkgconfig/pyruntime.pc               pkg-config --cflags --libs [--static] pyruntime
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(SKBUILD)
  if(PYRT_BUILD_CAPI_SHARED)
    install(TARGETS pyruntime_c LIBRARY DESTINATION pyruntime/lib)
    install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/pyruntime.h ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/pyruntime_micro.h
            DESTINATION pyruntime/include)
  endif()
  return()
endif()

set(PYRT_CONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/pyruntime)
set(PYRT_INSTALL_TARGETS pyrt_core)
if(PYRT_BUILD_CAPI_SHARED)
  list(APPEND PYRT_INSTALL_TARGETS pyruntime_c)
endif()
install(TARGETS ${PYRT_INSTALL_TARGETS} EXPORT pyruntime-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/pyruntime.h ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/pyruntime_micro.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT pyruntime-targets NAMESPACE pyruntime:: DESTINATION ${PYRT_CONFIG_DIR})

set(PYRT_CONFIG_HAS_SHARED ${PYRT_BUILD_CAPI_SHARED})
set(PYRT_CONFIG_HAS_THREADS ${PYRT_THREADS})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/pyruntime-config.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/pyruntime-config.cmake INSTALL_DESTINATION ${PYRT_CONFIG_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/pyruntime-config-version.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pyruntime-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/pyruntime-config-version.cmake DESTINATION ${PYRT_CONFIG_DIR})

# pkg-config: -lpyruntime finds the shared library where there is one; --static adds what the archive needs.
set(PYRT_PC_LIBS_PRIVATE "-lstdc++ -lm")
if(PYRT_THREADS)
  string(APPEND PYRT_PC_LIBS_PRIVATE " -lpthread")
endif()
file(RELATIVE_PATH PYRT_PC_UP /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/pyruntime.pc.in ${CMAKE_CURRENT_BINARY_DIR}/pyruntime.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pyruntime.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# `make install PREFIX=...` (cmake --install): the daemon and tools, libkvtier shared and static,
# the public headers, a CMake package (find_package(kvtier) -> kvtier::kvtier,
# kvtier::kvtier_static), a pkg-config file (kvtier.pc), and the systemd/sysusers/tmpfiles units
# with a sample configuration.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(KVT_INSTALL_SYSTEMD "Install the systemd unit, sysusers and tmpfiles snippets" ON)

set(_kvt_programs kv-tierd kvtierctl)
if(TARGET kvt-bench)
  list(APPEND _kvt_programs kvt-bench)
endif()
install(TARGETS ${_kvt_programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# Two export sets: the shared library's needs nothing beyond itself; the static archive's names the
# libraries its objects use, which kvtierConfig.cmake looks for only to define kvtier::kvtier_static
# (so a consumer of the shared library needs none of their -dev packages).
# (Their include directory comes from the targets' $<INSTALL_INTERFACE:include>.)
install(TARGETS kvtier EXPORT kvtierTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development)
install(TARGETS kvtier_static EXPORT kvtierStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
# Only include/kvt/ is public.
install(FILES include/kvt/kvt.h include/kvt/kvt.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvt COMPONENT development)

# What a consumer of the installed libkvtier.a links besides it: kvtier_static's INTERFACE link, the
# libraries from outside the tree its objects use (kvt_bundle, in client/, reads them off the
# targets). For each: how an installed kvtierConfig.cmake defines its imported target again, and
# its flags in kvtier.pc's Libs.private. Those are plain names (the Debian packages put them on the
# linker's path): Requires.private would make `pkg-config --cflags kvtier` need their -dev packages
# even for the shared library. A library not listed here stops the configure.
#
# What kvtierConfig.cmake runs to find <package> quietly, noting <what> as missing when it is not
# there (that only costs the static target).
function(_kvt_quiet_find out package what)
  set(${out} "find_package(${package} QUIET)\nif(NOT ${package}_FOUND)\n  list(APPEND _kvtier_static_missing \"${what}\")\nendif()" PARENT_SCOPE)
endfunction()

get_target_property(_kvt_static_links kvtier_static INTERFACE_LINK_LIBRARIES)
set(KVT_CONFIG_STATIC_DEPENDENCIES "")
set(KVT_PC_STATIC_LIBS "")
foreach(_lib IN LISTS _kvt_static_links)
  if(_lib STREQUAL "Threads::Threads")
    _kvt_quiet_find(_find Threads "Threads")
    set(_libs "-lpthread")
  elseif(_lib STREQUAL "TBB::tbb")
    _kvt_quiet_find(_find TBB "TBB (libtbb-dev)")
    set(_libs "-ltbb")
  elseif(_lib STREQUAL "PkgConfig::XXHASH")
    set(_find [=[if(NOT TARGET PkgConfig::XXHASH)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(XXHASH QUIET IMPORTED_TARGET libxxhash)
  endif()
  if(NOT TARGET PkgConfig::XXHASH)
    list(APPEND _kvtier_static_missing "libxxhash (pkg-config libxxhash, libxxhash-dev)")
  endif()
endif()]=])
    set(_libs "-lxxhash")
  elseif(_lib STREQUAL "CUDA::cudart_static")
    _kvt_quiet_find(_find CUDAToolkit "the CUDA toolkit (CUDA::cudart_static)")
    set(_libs "-L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -ldl -lrt")
  else()
    message(FATAL_ERROR "libkvtier.a links ${_lib}: say in cmake/KvtInstall.cmake how an installed "
                        "consumer finds it (kvtierConfig.cmake) and links it (kvtier.pc)")
  endif()
  string(APPEND KVT_CONFIG_STATIC_DEPENDENCIES "${_find}\n")
  string(APPEND KVT_PC_STATIC_LIBS "${_libs} ")
endforeach()

set(KVT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvtier)
install(EXPORT kvtierTargets NAMESPACE kvtier:: DESTINATION ${KVT_CMAKE_DIR} COMPONENT development)
install(EXPORT kvtierStaticTargets NAMESPACE kvtier:: DESTINATION ${KVT_CMAKE_DIR} COMPONENT development)
configure_package_config_file(packaging/cmake/kvtierConfig.cmake.in
  ${CMAKE_BINARY_DIR}/packaging/kvtierConfig.cmake INSTALL_DESTINATION ${KVT_CMAKE_DIR})
# The package version is the release; the C ABI version (kvt_version) is KVT_ABI_VERSION.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/kvtierConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/packaging/kvtierConfig.cmake
              ${CMAKE_BINARY_DIR}/packaging/kvtierConfigVersion.cmake
        DESTINATION ${KVT_CMAKE_DIR} COMPONENT development)

# pkg-config: paths relative to ${pcfiledir} so the installed tree can be relocated.
file(RELATIVE_PATH KVT_PC_PREFIX_FROM_PCDIR
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
set(KVT_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
set(KVT_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
configure_file(packaging/pkgconfig/kvtier.pc.in ${CMAKE_BINARY_DIR}/packaging/kvtier.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/kvtier.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)

if(KVT_INSTALL_SYSTEMD)
  # The unit points at the installed daemon. It is configured at install time, so that
  # `cmake --install --prefix P` (make install PREFIX=P) gets P, not the configure-time prefix.
  # systemd reads /usr/local/lib/systemd/system as well as /usr/lib/systemd/system, and the same
  # for sysusers.d and tmpfiles.d.
  install(CODE "
    set(KVT_DAEMON_PATH \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/kv-tierd\")
    set(CMAKE_INSTALL_FULL_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
    set(_unit \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/kv-tierd.service\")
    message(STATUS \"Installing: \${_unit}\")
    configure_file(\"${CMAKE_SOURCE_DIR}/packaging/systemd/kv-tierd.service.in\" \"\${_unit}\" @ONLY)
  " COMPONENT runtime)
  install(FILES packaging/systemd/kv-tierd.sysusers DESTINATION lib/sysusers.d RENAME kv-tierd.conf
          COMPONENT runtime)
  install(FILES packaging/systemd/kv-tierd.tmpfiles DESTINATION lib/tmpfiles.d RENAME kv-tierd.conf
          COMPONENT runtime)
  install(FILES packaging/config.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/kv-tierd
          RENAME config.yaml.example COMPONENT runtime)
  install(FILES docs/operations.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
endif()

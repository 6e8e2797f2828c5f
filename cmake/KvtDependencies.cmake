# Every dependency comes from a Debian package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)                 # Asio (header-only)
find_package(TBB REQUIRED)                        # TBB::tbb
find_package(yaml-cpp REQUIRED)                   # yaml-cpp
find_package(CLI11 CONFIG REQUIRED)               # CLI11::CLI11
find_package(spdlog REQUIRED)                     # spdlog::spdlog
find_package(prometheus-cpp CONFIG REQUIRED)      # prometheus-cpp::pull
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(HIREDIS IMPORTED_TARGET hiredis)
if(KVT_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(KVT_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

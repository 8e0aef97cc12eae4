# Cross-compiling for 64-bit ARM Linux (aarch64) on a Debian x86-64 host, with Debian's cross
# toolchain (g++-aarch64-linux-gnu: its libstdc++ and libgomp live in /usr/aarch64-linux-gnu) and
# running the results under qemu's user-mode emulator (qemu-user). tools/test_aarch64.sh uses it:
#
#   cmake -S . -B build-arm -G Ninja -DCMAKE_TOOLCHAIN_FILE=tools/cmake/aarch64-linux-gnu.cmake \
#         -DLONGVQ_FRONTENDS=OFF -DLONGVQ_TESTS=ON
#
# CMAKE_CROSSCOMPILING_EMULATOR makes ctest (and catch_discover_tests, which lists each test
# executable's cases at build time) run the aarch64 executables through qemu.
#
# The only third-party dependencies of the engine and its tests are header-only (nlohmann-json,
# Catch2 v2): the host's copies are used. Pointing the cross compiler at the host's /usr/include
# would mix in the host's C library headers, so a directory of links to just those two packages
# is made in the build tree, with minimal CMake package files for them.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# GCC's note that passing some structs changed ABI in GCC 10.1 only matters when mixing objects of
# older compilers: not here.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")

find_program(LONGVQ_QEMU_AARCH64 qemu-aarch64)
if(LONGVQ_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LONGVQ_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
endif()

# Libraries, headers and packages of the target only; programs (ninja, python) of the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The host's header-only packages (not in try_compile projects, which need none of them).
get_property(_longvq_in_try_compile GLOBAL PROPERTY IN_TRY_COMPILE)
if(NOT _longvq_in_try_compile)
  set(_longvq_hdr "${CMAKE_BINARY_DIR}/host-headers")
  file(MAKE_DIRECTORY "${_longvq_hdr}/include" "${_longvq_hdr}/nlohmann_json" "${_longvq_hdr}/Catch2")
  foreach(_dir nlohmann catch2)
    if(EXISTS "/usr/include/${_dir}" AND NOT EXISTS "${_longvq_hdr}/include/${_dir}")
      file(CREATE_LINK "/usr/include/${_dir}" "${_longvq_hdr}/include/${_dir}" SYMBOLIC)
    endif()
  endforeach()
  if(EXISTS /usr/share/cmake/nlohmann_json/nlohmann_jsonConfigVersion.cmake)
    file(WRITE "${_longvq_hdr}/nlohmann_json/nlohmann_jsonConfigVersion.cmake"
         "include(/usr/share/cmake/nlohmann_json/nlohmann_jsonConfigVersion.cmake)\n")
    file(WRITE "${_longvq_hdr}/nlohmann_json/nlohmann_jsonConfig.cmake"
         "if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES \"${_longvq_hdr}/include\")
endif()\n")
    set(nlohmann_json_DIR "${_longvq_hdr}/nlohmann_json" CACHE PATH "host nlohmann-json (header-only)")
  endif()
  if(EXISTS /usr/lib/cmake/Catch2/Catch2ConfigVersion.cmake)
    file(WRITE "${_longvq_hdr}/Catch2/Catch2ConfigVersion.cmake"
         "include(/usr/lib/cmake/Catch2/Catch2ConfigVersion.cmake)\n")
    # Catch.cmake (catch_discover_tests) from the host's package; no Catch2WithMain (a host library).
    file(WRITE "${_longvq_hdr}/Catch2/Catch2Config.cmake"
         "if(NOT TARGET Catch2::Catch2)
  list(APPEND CMAKE_MODULE_PATH /usr/lib/cmake/Catch2)
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES \"${_longvq_hdr}/include\")
endif()\n")
    set(Catch2_DIR "${_longvq_hdr}/Catch2" CACHE PATH "host Catch2 v2 (header-only)")
  endif()
endif()

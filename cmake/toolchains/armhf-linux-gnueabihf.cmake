# Cross build for the PYNQ-Z1's ARM cores: Cortex-A9, ARMv7-A, NEON, hard float,
# with Debian 12's crossbuild-essential-armhf. Libraries come from the sysroot
# that scripts/install-armhf-deps.sh unpacks ($BUSI_ARMHF_SYSROOT, default
# /opt/busi-armhf/sysroot); the C library and libstdc++ from the cross compiler's
# own /usr/arm-linux-gnueabihf. Tests run under qemu-arm emulating a Cortex-A9.
#
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armhf-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)

# An environment variable rather than a cache entry: the toolchain file is
# re-read by every try_compile, which does not see the cache.
if(DEFINED ENV{BUSI_ARMHF_SYSROOT})
  set(busi_armhf_sysroot "$ENV{BUSI_ARMHF_SYSROOT}")
else()
  set(busi_armhf_sysroot /opt/busi-armhf/sysroot)
endif()
if(NOT EXISTS "${busi_armhf_sysroot}/usr/lib/arm-linux-gnueabihf")
  message(FATAL_ERROR "armhf sysroot ${busi_armhf_sysroot} is missing: run scripts/install-armhf-deps.sh")
endif()

# The board's CPU exactly: the compiler may use NEON anywhere (auto-vectorization
# included), which is what the board runs. -Wno-psabi: GCC notes on every
# std::map iterator that its passing changed in GCC 7.1; everything here and
# in the sysroot is built by GCC 12, so the note never applies.
set(busi_armhf_cpu_flags "-mcpu=cortex-a9 -mfpu=neon -mfloat-abi=hard -Wno-psabi")
set(CMAKE_C_FLAGS_INIT "${busi_armhf_cpu_flags}")
set(CMAKE_CXX_FLAGS_INIT "${busi_armhf_cpu_flags}")
# The sysroot's shared libraries name further ones (libopencv_imgcodecs ->
# libgdal -> ...) that the linker must find without linking them directly
# (a few of Debian's live in /usr/lib, outside the multiarch folder).
set(busi_armhf_link_flags "")
foreach(dir usr/lib/arm-linux-gnueabihf lib/arm-linux-gnueabihf usr/lib)
  string(APPEND busi_armhf_link_flags " -Wl,-rpath-link,${busi_armhf_sysroot}/${dir}")
endforeach()
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT "${busi_armhf_link_flags}")
endforeach()

# Debian's multiarch headers (jconfig.h of libjpeg, ...) sit beside the common
# ones; a native compiler searches that folder by itself, the cross one does not.
foreach(lang C CXX)
  set(CMAKE_${lang}_STANDARD_INCLUDE_DIRECTORIES "${busi_armhf_sysroot}/usr/include/arm-linux-gnueabihf")
endforeach()

set(CMAKE_FIND_ROOT_PATH "${busi_armhf_sysroot}" /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and gtest_discover_tests) run armhf binaries through this. -L makes
# the sysroot's dynamic loader and libraries the ones the binaries see.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -cpu cortex-a9 -L "${busi_armhf_sysroot}")

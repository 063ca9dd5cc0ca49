# BUSI_STATIC_THIRD_PARTY: the board package. Links OpenCV's core and imgproc,
# libpng, libjpeg, libdeflate, zlib and Boost.Program_options from their static archives
# (Debian ships them all), so the programs need none of Debian's sonames on the
# board: PYNQ's Ubuntu 22.04 has OpenCV 4.5.4 (libopencv_core.so.4.5d) where
# Debian 12 has 4.6 (.so.406). Images are decoded by libdeflate/libpng and libjpeg
# (OpenCV's imgcodecs would drag GDAL and its closure along). The few shared
# libraries the archives still need (TBB for cv::parallel_for_, libGLX for
# OpenCV's OpenGL interop) are installed beside the programs by
# busi_bundle_runtime_libraries() below. libstdc++ and glibc stay shared: the
# board's are new enough (scripts/check-armhf-abi.sh checks it).
if(BUSI_BUILD_TESTS)
  message(FATAL_ERROR "BUSI_STATIC_THIRD_PARTY builds the board package only; the tests write their "
                      "images with OpenCV's imgcodecs, which it leaves out: add -DBUSI_BUILD_TESTS=OFF")
endif()
# The shared ones first (the sysroot has no libGLX.so development link) ...
find_library(busi_tbb NAMES tbb libtbb.so.12 REQUIRED)
find_library(busi_glx NAMES GLX libGLX.so.0 REQUIRED)
# ... then every find_library/find_package below takes the archive.
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
set(Boost_USE_STATIC_LIBS ON)
find_path(busi_opencv_include opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
find_library(busi_opencv_core NAMES opencv_core REQUIRED)
find_library(busi_opencv_imgproc NAMES opencv_imgproc REQUIRED)
find_package(ZLIB REQUIRED)
add_library(busi_opencv_static INTERFACE)
target_include_directories(busi_opencv_static SYSTEM INTERFACE ${busi_opencv_include})
# Link order matters for archives: imgproc needs core, core needs the rest.
target_link_libraries(busi_opencv_static INTERFACE
  ${busi_opencv_imgproc} ${busi_opencv_core} ZLIB::ZLIB ${busi_tbb} ${busi_glx} ${CMAKE_DL_LIBS} Threads::Threads)
set(OpenCV_LIBS busi_opencv_static)
set(BUSI_OPENCV_IMGPROC_LIBS busi_opencv_static)

# The programs look for the bundled libraries in <prefix>/lib/busi-infer. As
# DT_RPATH, not the linker's default DT_RUNPATH: a RUNPATH serves only the
# program's own NEEDED entries, while libGLX's libGLdispatch and libX11 must be
# found there too (an RPATH is searched for the dependencies of everything the
# program loads).
set(BUSI_BUNDLED_LIBDIR ${CMAKE_INSTALL_LIBDIR}/busi-infer)
set(CMAKE_INSTALL_RPATH "$ORIGIN/../${BUSI_BUNDLED_LIBDIR}")
string(APPEND CMAKE_EXE_LINKER_FLAGS " -Wl,--disable-new-dtags")

# At install time: every shared library the installed programs need, found in
# the sysroot (never the host), except the base system every armhf Linux has.
function(busi_bundle_runtime_libraries)
  set(search_dirs)
  foreach(root IN LISTS CMAKE_FIND_ROOT_PATH)
    list(APPEND search_dirs ${root}/lib/${CMAKE_LIBRARY_ARCHITECTURE} ${root}/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}
                            ${root}/lib ${root}/usr/lib)
  endforeach()
  set(programs)
  foreach(target IN LISTS ARGN)
    list(APPEND programs "\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/$<TARGET_FILE_NAME:${target}>")
  endforeach()
  install(CODE "
    set(BUSI_BUNDLE_OBJDUMP \"${CMAKE_OBJDUMP}\")
    set(BUSI_BUNDLE_SEARCH \"${search_dirs}\")
    set(BUSI_BUNDLE_PROGRAMS \"${programs}\")
    set(BUSI_BUNDLE_DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${BUSI_BUNDLED_LIBDIR}\")
    include(\"${PROJECT_SOURCE_DIR}/cmake/bundle_runtime_libraries.cmake\")")
endfunction()

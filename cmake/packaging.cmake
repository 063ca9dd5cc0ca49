# Binary archive of what `cmake --install` installs: `cpack -G TGZ` in a build
# folder gives busi_infer-<version>-Linux-<processor>.tar.gz (armv7l in the
# armhf cross build), to unpack into a prefix such as /usr/local on the board.
set(CPACK_PACKAGE_NAME busi_infer)
set(CPACK_PACKAGE_VENDOR "busi-infer")
set(CPACK_SYSTEM_NAME "${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR}")
set(CPACK_GENERATOR TGZ)
include(CPack)

# Cross build for 64-bit ARM (NEON) with Debian's g++-aarch64-linux-gnu, run under qemu-user:
# scripts/test-aarch64.sh. The arm64 libraries are unpacked into DM_ARM_SYSROOT rather than
# installed with multiarch, which would upgrade amd64 packages to match.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
if(NOT DM_ARM_SYSROOT)
  set(DM_ARM_SYSROOT $ENV{DM_ARM_SYSROOT})
endif()
if(NOT DM_ARM_SYSROOT)
  message(FATAL_ERROR "set DM_ARM_SYSROOT to the unpacked arm64 packages")
endif()
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu ${DM_ARM_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${DM_ARM_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR}
    "${DM_ARM_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${DM_ARM_SYSROOT}/usr/share/pkgconfig")
set(DM_ARM_LIBS ${DM_ARM_SYSROOT}/usr/lib/aarch64-linux-gnu)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${DM_ARM_LIBS} -Wl,-rpath,${DM_ARM_LIBS}")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)

// Compiled into every program that links longvq::engine through find_package(longvq) (the
// package's longvqConfig.cmake adds it, with LONGVQ_PACKAGE_PREFIX the installation's prefix):
// tells engine/runtime/install_paths.cpp where that installation's data and CUDA module are.
// Weak, so that several copies (a library and a program both linking longvq::engine) agree.
#ifndef LONGVQ_PACKAGE_PREFIX
#error "LONGVQ_PACKAGE_PREFIX must be defined by longvqConfig.cmake"
#endif

extern "C" __attribute__((weak)) const char* longvq_package_prefix() { return LONGVQ_PACKAGE_PREFIX; }

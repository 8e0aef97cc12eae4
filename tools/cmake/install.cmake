# cmake --install BUILD --prefix P: the layout below, found at run time relative to the binary
# (engine/runtime/install_paths.h), so P can be anything and can be moved afterwards.
#
#   P/bin/longvq                                  the CLI
#   P/lib/longvq/liblongvq_cuda_backend.so        the CUDA backend module (when built)
#   P/share/longvq/models/{austen-lm,listops,fashion-seq}/   config.json, *.safetensors, tokenizer files, README.md
#   P/include/longvq/{engine,loaders,kernels}/... engine/longvq.h and every header it and the
#                                                 engine's libraries include (include dir P/include/longvq)
#   P/lib/liblongvq*.a                            the engine's static libraries
#   P/lib/cmake/longvq/                           find_package(longvq CONFIG) → longvq::engine
#
# The build tree mirrors the run-time part: BUILD/bin/longvq and BUILD/share/longvq/models (a
# symlink to the source tree's models/), so the CLI finds the default model the same way there.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LONGVQ_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/longvq)            # share/longvq
set(LONGVQ_INSTALL_MODULEDIR ${CMAKE_INSTALL_LIBDIR}/longvq)           # lib/longvq
set(LONGVQ_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/longvq)      # include/longvq
set(LONGVQ_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/longvq)      # lib/cmake/longvq

# The layout the engine searches (relative to the prefix), compiled into install_paths.cpp only.
set_property(SOURCE ${PROJECT_SOURCE_DIR}/engine/runtime/install_paths.cpp TARGET_DIRECTORY longvq APPEND PROPERTY
  COMPILE_DEFINITIONS LONGVQ_INSTALL_DATADIR="${CMAKE_INSTALL_DATADIR}" LONGVQ_INSTALL_LIBDIR="${CMAKE_INSTALL_LIBDIR}")

# --- the build tree's mirror of the installed data ----------------------------------------------
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/${LONGVQ_INSTALL_DATADIR})
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/models ${CMAKE_BINARY_DIR}/${LONGVQ_INSTALL_DATADIR}/models SYMBOLIC)

# Only the top-level project installs (tools/bench adds this one as a subdirectory).
if(NOT PROJECT_IS_TOP_LEVEL)
  return()
endif()

# --- run time: the CLI, the CUDA module, the models ---------------------------------------------
install(TARGETS longvq_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
if(TARGET longvq_cuda_backend)
  # Keep the CUDA toolkit's library directory (cuBLAS, cuFFT) in the installed module's RUNPATH.
  set_target_properties(longvq_cuda_backend PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
  install(TARGETS longvq_cuda_backend LIBRARY DESTINATION ${LONGVQ_INSTALL_MODULEDIR} COMPONENT runtime)
endif()
# What a model directory needs (docs/file-formats.md), not its training logs.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/ DESTINATION ${LONGVQ_INSTALL_DATADIR}/models COMPONENT runtime
  FILES_MATCHING PATTERN "config.json" PATTERN "*.safetensors" PATTERN "tokenizer*" PATTERN "vocab*"
                 PATTERN "merges.txt" PATTERN "README.md")

# --- development: headers, static libraries, the CMake package ----------------------------------
# The headers are found at install time (always current): engine/longvq.h and every header of
# engine/ and loaders/, with whatever they include from the source tree, transitively.
install(CODE "set(LONGVQ_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
set(LONGVQ_HEADER_DESTINATION \"${LONGVQ_INSTALL_INCLUDEDIR}\")" COMPONENT dev)
install(SCRIPT ${CMAKE_CURRENT_LIST_DIR}/install_headers.cmake COMPONENT dev)

set(_longvq_exported longvq_engine longvq longvq_ops longvq_loaders longvq_cpu_kernels longvq_text longvq_serving
    longvq_warnings)  # longvq_warnings: a link-only (empty) dependency of each, must be exported too
install(TARGETS ${_longvq_exported} EXPORT longvqTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${LONGVQ_INSTALL_INCLUDEDIR})
install(EXPORT longvqTargets NAMESPACE longvq:: DESTINATION ${LONGVQ_INSTALL_CMAKEDIR} COMPONENT dev)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/longvqConfig.cmake.in
  ${CMAKE_BINARY_DIR}/tools/cmake/longvqConfig.cmake
  INSTALL_DESTINATION ${LONGVQ_INSTALL_CMAKEDIR}
  PATH_VARS LONGVQ_INSTALL_INCLUDEDIR LONGVQ_INSTALL_DATADIR)
# 0.x: a minor version may break the API, so only the same major.minor matches.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/tools/cmake/longvqConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/tools/cmake/longvqConfig.cmake ${CMAKE_BINARY_DIR}/tools/cmake/longvqConfigVersion.cmake
              ${CMAKE_CURRENT_LIST_DIR}/longvq_package_prefix.cpp
        DESTINATION ${LONGVQ_INSTALL_CMAKEDIR} COMPONENT dev)

# Run by `cmake --install` (tools/cmake/install.cmake): installs the public headers, i.e.
# engine/longvq.h and every header of engine/ and loaders/ (the libraries of longvq::engine),
# plus each header of the source tree they include ("dir/file.h"), transitively, at their source
# paths under ${CMAKE_INSTALL_PREFIX}/${LONGVQ_HEADER_DESTINATION}. Found at install time, so a new
# header or #include needs no change here.
# In: LONGVQ_SOURCE_DIR, LONGVQ_HEADER_DESTINATION (set by install(CODE) just before).
cmake_policy(PUSH)
cmake_policy(VERSION 3.25)  # install scripts run with old policies (IN_LIST)
file(GLOB_RECURSE _roots RELATIVE ${LONGVQ_SOURCE_DIR}
     ${LONGVQ_SOURCE_DIR}/engine/*.h ${LONGVQ_SOURCE_DIR}/loaders/*.h)
set(_todo engine/longvq.h ${_roots})
set(_done "")
while(_todo)
  list(POP_FRONT _todo _h)
  if(_h IN_LIST _done)
    continue()
  endif()
  list(APPEND _done ${_h})
  file(STRINGS ${LONGVQ_SOURCE_DIR}/${_h} _lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(_line IN LISTS _lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" _inc "${_line}")
    get_filename_component(_dir ${_h} DIRECTORY)
    if(EXISTS ${LONGVQ_SOURCE_DIR}/${_inc})
      list(APPEND _todo ${_inc})
    elseif(EXISTS ${LONGVQ_SOURCE_DIR}/${_dir}/${_inc})  # relative to the including header
      list(APPEND _todo ${_dir}/${_inc})
    else()
      message(FATAL_ERROR "${_h} includes \"${_inc}\", which is not in ${LONGVQ_SOURCE_DIR}")
    endif()
  endforeach()
endwhile()
list(SORT _done)
foreach(_h IN LISTS _done)
  get_filename_component(_dir ${_h} DIRECTORY)
  file(INSTALL ${LONGVQ_SOURCE_DIR}/${_h} DESTINATION ${CMAKE_INSTALL_PREFIX}/${LONGVQ_HEADER_DESTINATION}/${_dir})
endforeach()
cmake_policy(POP)

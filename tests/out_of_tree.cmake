# sdk:out_of_tree_plugin — the installed SDK works for a plugin author:
#   1. cmake --install <build> --prefix <work>/prefix
#   2. configure and build examples/hello_plugin against that prefix only (plus Torch)
#   3. <work>/prefix/bin/attnlab backends, with ATTNLAB_PLUGIN_PATH=<example build>, lists
#      hello (the out-of-tree plugin) and dense (installed next to the installed CLI).
#   4. <work>/prefix/bin/attnlab check hello: the contract suite passes on the example.
# Run as: cmake -DATTNLAB_BUILD_DIR=... -DEXAMPLE_DIR=... -DWORK_DIR=... -DGENERATOR=...
#               [-DTorch_DIR=...] [-DCXX_COMPILER=...] [-DCXX_LAUNCHER=...] -P out_of_tree.cmake
foreach(var ATTNLAB_BUILD_DIR EXAMPLE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "out_of_tree.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit ${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
  set(step_errors "${err}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(example_build ${WORK_DIR}/hello_build)
file(REMOVE_RECURSE ${WORK_DIR})

run_step("install attnlab to ${prefix}" ${CMAKE_COMMAND} --install ${ATTNLAB_BUILD_DIR} --prefix ${prefix})

# Only the install prefix on the search path (not the build tree); Torch through the hint the
# package config records, and through Torch_DIR when the caller passes it.
set(configure_args -S ${EXAMPLE_DIR} -B ${example_build} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release)
if(Torch_DIR)
  list(APPEND configure_args -DTorch_DIR=${Torch_DIR})
endif()
if(CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
if(CXX_LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_LAUNCHER})
endif()
run_step("configure examples/hello_plugin" ${CMAKE_COMMAND} ${configure_args})
file(STRINGS ${example_build}/CMakeCache.txt attnlab_dir REGEX "^attnlab_DIR:")
if(NOT attnlab_dir MATCHES "^attnlab_DIR:PATH=${prefix}/")
  message(FATAL_ERROR "find_package(attnlab) did not use the installed package: ${attnlab_dir}")
endif()
run_step("build examples/hello_plugin" ${CMAKE_COMMAND} --build ${example_build})

if(NOT EXISTS ${example_build}/hello.so)
  message(FATAL_ERROR "the example built no ${example_build}/hello.so")
endif()
# The installed CLI must run from the prefix alone: libattnlab_core through $ORIGIN/../lib.
run_step("installed attnlab backends" ${CMAKE_COMMAND} -E env ATTNLAB_PLUGIN_PATH=${example_build}
         ${prefix}/bin/attnlab backends)
foreach(expected "hello" "temperature" "${example_build}/hello.so" "dense" "${prefix}/plugins/dense.so")
  string(FIND "${step_output}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "attnlab backends output lacks '${expected}':\n${step_output}\n${step_errors}")
  endif()
endforeach()
if(step_errors MATCHES "skipped")
  message(FATAL_ERROR "attnlab backends skipped a plugin:\n${step_errors}")
endif()
message(STATUS "installed attnlab lists the out-of-tree plugin 'hello'")
run_step("installed attnlab check hello" ${CMAKE_COMMAND} -E env ATTNLAB_PLUGIN_PATH=${example_build}
         ${prefix}/bin/attnlab check hello)
string(FIND "${step_output}" "contract: passed" passed)
if(passed EQUAL -1)
  message(FATAL_ERROR "attnlab check hello did not pass:\n${step_output}\n${step_errors}")
endif()
message(STATUS "the contract suite passes on the out-of-tree plugin 'hello'")

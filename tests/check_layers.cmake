# layers:includes — no include runs from a lower layer up to a higher one. The layers of
# core/src, lowest first (a file may include its own layer and those before it; a file in a
# subfolder, such as trials/bench/, belongs to its top folder's layer):
#   base, sdk, text, model, runtime, check, report, trials, engine
# and the public SDK headers (core/include/attnlab) include only each other, the kernels'
# public headers, LibTorch and the standard library.
# Run as: cmake -DSOURCE_DIR=<repo> -P check_layers.cmake
set(layers base sdk text model runtime check report trials engine)
set(problems "")
foreach(layer ${layers})
  list(FIND layers ${layer} rank)
  file(GLOB_RECURSE files ${SOURCE_DIR}/core/src/${layer}/*.hpp ${SOURCE_DIR}/core/src/${layer}/*.cpp)
  foreach(file ${files})
    file(STRINGS ${file} includes REGEX "^#include \"[a-z_]+/")
    foreach(line ${includes})
      string(REGEX REPLACE "^#include \"([a-z_]+)/.*" "\\1" target "${line}")
      list(FIND layers ${target} target_rank)
      if(target_rank EQUAL -1)
        list(APPEND problems "${file}: includes '${target}/', which is no layer of core/src")
      elseif(target_rank GREATER rank)
        list(APPEND problems "${file}: layer '${layer}' includes the higher layer '${target}' (${line})")
      endif()
    endforeach()
  endforeach()
endforeach()
file(GLOB sdk_headers ${SOURCE_DIR}/core/include/attnlab/*.hpp)
foreach(file ${sdk_headers})
  file(STRINGS ${file} includes REGEX "^#include \"")
  foreach(line ${includes})
    list(APPEND problems "${file}: a public SDK header includes an internal header (${line})")
  endforeach()
endforeach()
# Density has its own header so that masks.hpp need not pull in the backend interface.
file(STRINGS ${SOURCE_DIR}/core/include/attnlab/masks.hpp masks_backend REGEX "^#include <attnlab/backend.hpp>")
if(masks_backend)
  list(APPEND problems "core/include/attnlab/masks.hpp includes attnlab/backend.hpp")
endif()
# Without LibTorch: the static library attnlab_store (the results database, shard paths, the
# trial kinds' tables) and
# bin/attnlab, which links only that so that query, trials, status and --help start in
# milliseconds (loading LibTorch alone takes ~0.6 s; tools/attnlab/front.cpp). Their sources
# may include only each other: any other header of core/src, the SDK, LibTorch or ATen would
# bring LibTorch back (tests/test_cli_front.sh also checks the linked binary with ldd).
file(GLOB kind_tables RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/core/src/trials/*/tables.cpp)
set(torch_free core/src/runtime/store.hpp core/src/runtime/store.cpp core/src/base/metrics.hpp core/src/base/metrics.cpp
    core/src/trials/tables.hpp core/src/trials/tables.cpp core/src/trials/kinds.def core/src/trials/bench/thresholds.hpp
    ${kind_tables}
    core/src/engine/shard_paths.hpp
    core/src/engine/shard_paths.cpp tools/attnlab/front.cpp tools/attnlab/cmd_query.cpp tools/attnlab/cmd_metrics.cpp
    tools/attnlab/cmd_status.cpp tools/attnlab/table.cpp tools/attnlab/table.hpp tools/attnlab/commands.hpp
    tools/attnlab/command_catalog.hpp)
set(torch_free_headers runtime/store.hpp base/metrics.hpp base/text.hpp engine/shard_paths.hpp trials/tables.hpp
    trials/kinds.def trials/bench/thresholds.hpp commands.hpp command_catalog.hpp table.hpp)
foreach(file ${torch_free})
  file(STRINGS ${SOURCE_DIR}/${file} includes REGEX "^#include ")
  foreach(line ${includes})
    if(line MATCHES "^#include <(torch|ATen|c10|attnlab)/")
      list(APPEND problems "${file}: must build without LibTorch, but includes ${line}")
    elseif(line MATCHES "^#include \"([^\"]+)\"")
      list(FIND torch_free_headers "${CMAKE_MATCH_1}" found)
      if(found EQUAL -1)
        list(APPEND problems "${file}: must build without LibTorch, but includes ${line}")
      endif()
    endif()
  endforeach()
endforeach()
if(problems)
  string(REPLACE ";" "\n" text "${problems}")
  message(FATAL_ERROR "layer violations:\n${text}")
endif()
message(STATUS "layers: every include runs downward; the database commands include no LibTorch")

# attnlab_add_plugin(<name> <sources>...): a backend plugin as a MODULE library <name>.so.
# Used in-tree (plugins/*) and by out-of-tree plugins after find_package(attnlab).
function(attnlab_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  if(TARGET attnlab_core)
    target_link_libraries(${name} PRIVATE attnlab_core attnlab_kernels)
  else()
    target_link_libraries(${name} PRIVATE attnlab::attnlab_core attnlab::attnlab_kernels)
  endif()
  # The SDK headers use C++17 (std::variant); an out-of-tree project may not have set it.
  target_compile_features(${name} PRIVATE cxx_std_17)
  set_target_properties(${name} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Catch a symbol the SDK does not export when the plugin links, not when it loads.
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  if(TARGET attnlab_plugins)
    add_dependencies(attnlab_plugins ${name})
  endif()
  if(ATTNLAB_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ATTNLAB_PLUGIN_OUTPUT_DIRECTORY})
  endif()
  if(ATTNLAB_PLUGIN_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION plugins)
  endif()
endfunction()

# Warnings, sanitizers and the kvt_library helper shared by every folder.
add_library(kvt_build_flags INTERFACE)
target_compile_options(kvt_build_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${KVT_WERROR}>>:-Werror>)
target_include_directories(kvt_build_flags INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}> $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>)

# Debug information in C/C++ objects: "lines" (-g1: file and line in backtraces, sanitizer reports
# and perf) or "full" (-g: also locals and types, for gdb). Empty: lines for RelWithDebInfo (the
# default build; its objects compile about 30% faster than with -g on the 2-core CI machine), full
# for Debug. The last -g option on a command line wins, and these come after CMAKE_<LANG>_FLAGS_*.
set(KVT_DEBUG_INFO "" CACHE STRING "lines | full (empty: lines for RelWithDebInfo, full for Debug)")
if(KVT_DEBUG_INFO STREQUAL "lines")
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-g1>)
elseif(KVT_DEBUG_INFO STREQUAL "full")
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-g>)
elseif(KVT_DEBUG_INFO STREQUAL "")
  add_compile_options($<$<AND:$<CONFIG:RelWithDebInfo>,$<COMPILE_LANGUAGE:C,CXX>>:-g1>)
else()
  message(FATAL_ERROR "KVT_DEBUG_INFO is '${KVT_DEBUG_INFO}': use lines, full, or leave it empty")
endif()

if(KVT_SANITIZE)
  string(REPLACE ";" "," _kvt_san "${KVT_SANITIZE}")
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${_kvt_san}>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=undefined>)
  add_link_options(-fsanitize=${_kvt_san})
endif()

# kvt_library(<name> SOURCES ... [DEPS ...]) -> target kvt_<name>, alias kvt::<name>.
function(kvt_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(kvt_${name} STATIC ${ARG_SOURCES})
  add_library(kvt::${name} ALIAS kvt_${name})
  target_link_libraries(kvt_${name} PUBLIC kvt_build_flags ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# kvt_bundle(<target> <objects_var> <links_var>): what an archive holding <target> and everything it
# needs is made of. <objects_var>: $<TARGET_OBJECTS:...> of <target> and of every in-tree static
# library it links, directly or through another; <links_var>: the libraries from outside the tree
# they link (imported targets, plain names), which a consumer of the archive must still link.
# Read at configure time, so the libraries must be complete (targets defined, deps added) by then.
function(kvt_bundle target objects_var links_var)
  set(queue ${target})
  set(bundled)
  set(links)
  while(queue)
    list(POP_FRONT queue lib)
    if(lib IN_LIST bundled)
      continue()
    endif()
    list(APPEND bundled ${lib})
    # Device code compiled with -rdc would need a device-link step the archive does not have.
    get_target_property(rdc ${lib} CUDA_SEPARABLE_COMPILATION)
    if(rdc)
      message(FATAL_ERROR "kvt_bundle(${target}): ${lib} uses CUDA separable compilation")
    endif()
    get_target_property(deps ${lib} LINK_LIBRARIES)
    foreach(dep IN LISTS deps)
      if(dep MATCHES "^::@")     # marks a target_link_libraries() from another folder
        continue()
      elseif(dep MATCHES "\\$<")
        message(FATAL_ERROR "kvt_bundle(${target}): ${lib} links a generator expression: ${dep}")
      elseif(NOT TARGET ${dep})
        list(APPEND links ${dep})  # a plain library name
        continue()
      endif()
      get_target_property(aliased ${dep} ALIASED_TARGET)
      if(aliased)
        set(dep ${aliased})
      endif()
      get_target_property(imported ${dep} IMPORTED)
      get_target_property(type ${dep} TYPE)
      if(imported)
        list(APPEND links ${dep})
      elseif(type STREQUAL "STATIC_LIBRARY")
        list(APPEND queue ${dep})
      elseif(type STREQUAL "INTERFACE_LIBRARY")
        # Usage requirements only (kvt_build_flags); one that links something would be lost here.
        get_target_property(iface ${dep} INTERFACE_LINK_LIBRARIES)
        if(iface)
          message(FATAL_ERROR "kvt_bundle(${target}): interface library ${dep} links ${iface}")
        endif()
      else()
        message(FATAL_ERROR "kvt_bundle(${target}): ${lib} links ${dep}, a ${type}")
      endif()
    endforeach()
  endwhile()
  list(TRANSFORM bundled PREPEND "$<TARGET_OBJECTS:" OUTPUT_VARIABLE objects)
  list(TRANSFORM objects APPEND ">")
  list(REMOVE_DUPLICATES links)
  set(${objects_var} ${objects} PARENT_SCOPE)
  set(${links_var} ${links} PARENT_SCOPE)
endfunction()

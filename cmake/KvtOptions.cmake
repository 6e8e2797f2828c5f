# Warnings, sanitizers and the kvt_library helper shared by every folder.
add_library(kvt_build_flags INTERFACE)
target_compile_options(kvt_build_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${KVT_WERROR}>>:-Werror>)
target_include_directories(kvt_build_flags INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}> $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>)

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

# Shared CMake helpers: warning flags and the test helper.

# pkm_warnings(target): the project's warning set, as errors when PKMSERVE_WERROR is on.
function(pkm_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
      -Wconversion -Wno-sign-conversion $<$<BOOL:${PKMSERVE_WERROR}>:-Werror>>)
  # GCC's flow analysis is confused by the sanitizers' instrumentation (std::regex's
  # std::function members are then "maybe uninitialized"); the normal build keeps the warning.
  if(PKMSERVE_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized>)
  endif()
endfunction()

# pkm_test(name SOURCES a.cc b.cc LIBS lib1 lib2 [PREFIX p.]): a GoogleTest executable whose
# tests CTest discovers one by one, their names prefixed with PREFIX (for one test source built
# twice, e.g. on the GPU and on the emulated device). Tests run with the repository root as
# working directory, so they can read models/ and tests/data/ by relative path.
function(pkm_test name)
  cmake_parse_arguments(ARG "" "PREFIX" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  pkm_warnings(${name})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  gtest_discover_tests(${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} DISCOVERY_TIMEOUT 30
    TEST_PREFIX "${ARG_PREFIX}")
endfunction()

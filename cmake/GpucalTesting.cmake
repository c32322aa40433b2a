# One helper registers every test binary. GPU suites get the `gpu` label; they
# skip (GTEST_SKIP with a reason) when no device is present.
include(GoogleTest)

# gpucal_add_test(NAME <name> SOURCES <files...> LIBS <targets...> [GPU])
function(gpucal_add_test)
  cmake_parse_arguments(T "GPU" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main gpucal::warnings)
  set(_labels cpu)
  if(T_GPU)
    set(_labels gpu)
  endif()
  gtest_discover_tests(${T_NAME}
    # A GTEST_SKIP shows as "Not Run (Skipped)" in CTest, never as a pass.
    PROPERTIES LABELS "${_labels}" SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]"
    DISCOVERY_TIMEOUT 60)
endfunction()

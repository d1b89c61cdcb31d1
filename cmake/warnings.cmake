# Warning flags, defined once. Product code gets them all; -Werror when SNAPVOL_WERROR (CI).
set(SNAPVOL_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers)
if(SNAPVOL_WERROR)
  list(APPEND SNAPVOL_WARNINGS -Werror)
endif()

function(snapvol_target_options target)
  target_compile_options(${target} PRIVATE ${SNAPVOL_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
endfunction()

if(SNAPVOL_SANITIZE)
  string(REPLACE ";" "," _san "${SNAPVOL_SANITIZE}")
  add_compile_options(-fsanitize=${_san} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${_san})
endif()

# A gtest binary from sources; tests are discovered by ctest with a label.
function(snapvol_test name)
  cmake_parse_arguments(T "BOTH_FORMATS" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest_main GTest::gmock)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
  # BOTH_FORMATS: the suite's repositories take their store format from the environment
  # (RepositoryOptions::format 0), so it runs a second time on store format 2, as
  # "format2.<test>"; a test that pins a format says so in its options.
  if(T_BOTH_FORMATS)
    gtest_discover_tests(${name} TEST_PREFIX format2. DISCOVERY_TIMEOUT 60
                         PROPERTIES LABELS unit ENVIRONMENT SNAPVOL_STORE_FORMAT=2)
  endif()
endfunction()

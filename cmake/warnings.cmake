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

# The throwaway PostgreSQL cluster of `ctest -L pg` (tests/pg/pg_cluster.sh; fixture pg, set up
# in src/catalog): its URL is ${SNAPVOL_PG_CLUSTER_DIR}/url while it runs.
set(SNAPVOL_PG_CLUSTER_DIR ${PROJECT_BINARY_DIR}/src/catalog/pg-cluster)

# A gtest binary from sources; tests are discovered by ctest with a label.
function(snapvol_test name)
  cmake_parse_arguments(T "BOTH_FORMATS;BOTH_CATALOGS" "" "SOURCES;LIBS" ${ARGN})
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
  # BOTH_CATALOGS: the suite's catalogs are where catalog_testing::TestCatalogDb puts them
  # (src/catalog/catalog_test_db.h), so it runs a second time on PostgreSQL, as "pg.<test>",
  # each test in a database of its own on the pg fixture's cluster. Tests about SQLite itself
  # are named Sqlite* and are not registered there.
  if(T_BOTH_CATALOGS)
    gtest_discover_tests(${name} TEST_PREFIX pg. TEST_FILTER -*.Sqlite* DISCOVERY_TIMEOUT 60
                         PROPERTIES LABELS pg FIXTURES_REQUIRED pg TIMEOUT 120
                         ENVIRONMENT SNAPVOL_TEST_PG_URL_FILE=${SNAPVOL_PG_CLUSTER_DIR}/url)
  endif()
endfunction()

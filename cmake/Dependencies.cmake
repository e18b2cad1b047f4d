# Locates the header-only dependencies. scripts/fetch-deps fills ${PROJECT_SOURCE_DIR}/third_party with pinned copies
# so that a machine without network (the GPU machine) builds from the same tree; system packages are used otherwise.
set(FLASHMLA_THIRD_PARTY ${PROJECT_SOURCE_DIR}/third_party)
set(FLASHMLA_FETCH_HINT "Run scripts/fetch-deps (needs network once) to fill third_party/.")

# CUTLASS / CuTe: only needed for the CUDA kernels.
if(FLASHMLA_WITH_CUDA)
  find_path(FLASHMLA_CUTLASS_INCLUDE cutlass/version.h
            HINTS ${FLASHMLA_CUTLASS_DIR} ${FLASHMLA_THIRD_PARTY}/cutlass/include NO_DEFAULT_PATH)
  if(NOT FLASHMLA_CUTLASS_INCLUDE AND SKBUILD)
    # `pip install .` on a fresh clone: fetch the pinned CUTLASS headers (needs network once).
    message(STATUS "flashmla: CUTLASS headers missing, running scripts/fetch-deps --cutlass-only")
    execute_process(COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/fetch-deps --cutlass-only RESULT_VARIABLE _rc)
    unset(FLASHMLA_CUTLASS_INCLUDE CACHE)
    find_path(FLASHMLA_CUTLASS_INCLUDE cutlass/version.h
              HINTS ${FLASHMLA_CUTLASS_DIR} ${FLASHMLA_THIRD_PARTY}/cutlass/include NO_DEFAULT_PATH)
  endif()
  if(NOT FLASHMLA_CUTLASS_INCLUDE)
    message(FATAL_ERROR "flashmla: CUTLASS/CuTe headers not found (looked for cutlass/version.h in "
                        "${FLASHMLA_THIRD_PARTY}/cutlass/include). ${FLASHMLA_FETCH_HINT} Or pass "
                        "-DFLASHMLA_CUTLASS_DIR=<dir with cutlass/ and cute/>, or configure with -DFLASHMLA_CUDA=OFF.")
  endif()
  file(STRINGS ${FLASHMLA_CUTLASS_INCLUDE}/cutlass/version.h _v REGEX "#define CUTLASS_(MAJOR|MINOR|PATCH) [0-9]+")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" FLASHMLA_CUTLASS_VERSION "${_v}")
  message(STATUS "flashmla: CUTLASS ${FLASHMLA_CUTLASS_VERSION} from ${FLASHMLA_CUTLASS_INCLUDE}")
endif()

if(FLASHMLA_BUILD_BENCH)
  find_path(FLASHMLA_CLI11_INCLUDE CLI/CLI.hpp HINTS ${FLASHMLA_THIRD_PARTY}/include)
  find_path(FLASHMLA_JSON_INCLUDE nlohmann/json.hpp HINTS ${FLASHMLA_THIRD_PARTY}/include)
  foreach(_dep CLI11 JSON)
    if(NOT FLASHMLA_${_dep}_INCLUDE)
      message(FATAL_ERROR "flashmla: ${_dep} headers not found. ${FLASHMLA_FETCH_HINT} (Debian: apt-get install "
                          "libcli11-dev nlohmann-json3-dev)")
    endif()
  endforeach()
  message(STATUS "flashmla: CLI11 from ${FLASHMLA_CLI11_INCLUDE}, nlohmann-json from ${FLASHMLA_JSON_INCLUDE}")
endif()

# GoogleTest: the pinned source copy in third_party/ when present (same version everywhere), else the system package.
if(FLASHMLA_BUILD_TESTS)
  if(EXISTS ${FLASHMLA_THIRD_PARTY}/googletest/CMakeLists.txt)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    add_subdirectory(${FLASHMLA_THIRD_PARTY}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL SYSTEM)
    message(STATUS "flashmla: GoogleTest from ${FLASHMLA_THIRD_PARTY}/googletest")
  else()
    find_package(GTest)
    if(NOT GTest_FOUND)
      message(FATAL_ERROR "flashmla: GoogleTest not found. ${FLASHMLA_FETCH_HINT} (Debian: apt-get install "
                          "googletest libgtest-dev)")
    endif()
    message(STATUS "flashmla: GoogleTest from the system")
  endif()
endif()

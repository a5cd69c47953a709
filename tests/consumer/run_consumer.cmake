# run_consumer.cmake: the install_consumer test (cmake -P).
#
# 1. cmake --install GORO_BUILD_DIR into a fresh prefix under WORK_DIR;
# 2. configure, build and run tests/consumer against it (find_package(goro));
# 3. compile the same main.cpp with `c++ -std=c++20 $(pkg-config --cflags
#    --libs goro)` and run it.
# Any failure is a FATAL_ERROR, which makes `cmake -P` exit non-zero.
cmake_minimum_required(VERSION 3.25)

foreach(var GORO_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR INSTALL_LIBDIR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

# run(<step> COMMAND ...): runs the command, echoes it, fails on non-zero exit.
function(run step)
  list(JOIN ARGN " " _cmdline)
  message(STATUS "[${step}] ${_cmdline}")
  execute_process(${ARGN} RESULT_VARIABLE _rc)
  if(NOT _rc STREQUAL "0")
    message(FATAL_ERROR "[${step}] failed (${_rc}): ${_cmdline}")
  endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(cmake_build "${WORK_DIR}/cmake-build")
set(pc_build "${WORK_DIR}/pkg-config-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}" "${pc_build}")

# A shared libgoro must be found at run time too.
set(ENV{LD_LIBRARY_PATH} "${prefix}/${INSTALL_LIBDIR}:$ENV{LD_LIBRARY_PATH}")

# 1. Install.
run(install COMMAND "${CMAKE_COMMAND}" --install "${GORO_BUILD_DIR}"
                    --config "${BUILD_TYPE}" --prefix "${prefix}")
foreach(f include/goro/goro.hpp
          ${INSTALL_LIBDIR}/cmake/goro/goroConfig.cmake
          ${INSTALL_LIBDIR}/cmake/goro/goroConfigVersion.cmake
          ${INSTALL_LIBDIR}/cmake/goro/goroTargets.cmake
          ${INSTALL_LIBDIR}/pkgconfig/goro.pc)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "[install] missing ${prefix}/${f}")
  endif()
endforeach()

# 2. find_package(goro) consumer.
set(gen_args "")
if(CMAKE_GENERATOR)
  set(gen_args -G "${CMAKE_GENERATOR}")
endif()
run(cmake-configure COMMAND "${CMAKE_COMMAND}" ${gen_args}
      -S "${CONSUMER_SOURCE_DIR}" -B "${cmake_build}"
      "-DCMAKE_PREFIX_PATH=${prefix}"
      "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
      "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
run(cmake-build COMMAND "${CMAKE_COMMAND}" --build "${cmake_build}" --config "${BUILD_TYPE}")
find_program(cmake_consumer goro_consumer
  PATHS "${cmake_build}" "${cmake_build}/${BUILD_TYPE}" NO_DEFAULT_PATH)
if(NOT cmake_consumer)
  message(FATAL_ERROR "[cmake-build] goro_consumer not found under ${cmake_build}")
endif()
run(cmake-run COMMAND "${cmake_consumer}" TIMEOUT 60)

# 3. pkg-config consumer.
if(NOT PKG_CONFIG_EXECUTABLE)
  message(FATAL_ERROR "[pkg-config] pkg-config not found (apt-get install pkg-config)")
endif()
set(ENV{PKG_CONFIG_PATH} "${prefix}/${INSTALL_LIBDIR}/pkgconfig")
run(pkg-config-build COMMAND sh -c
  "\"${CXX_COMPILER}\" -std=c++20 \"${CONSUMER_SOURCE_DIR}/main.cpp\" -o \"${pc_build}/goro_consumer\" $(\"${PKG_CONFIG_EXECUTABLE}\" --cflags --libs goro)")
run(pkg-config-run COMMAND "${pc_build}/goro_consumer" TIMEOUT 60)

message(STATUS "install_consumer: OK (prefix ${prefix})")

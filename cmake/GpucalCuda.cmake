# Decides whether the CUDA targets are built. nvcc is looked for on PATH, in
# CUDACXX / CUDA_HOME / CUDA_PATH and in /usr/local/cuda/bin, because a
# non-login shell (CI's) may not have read /etc/profile.d.
set(GPUCAL_HAVE_CUDA OFF)
if(NOT GPUCAL_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "GPUCAL_CUDA must be AUTO, ON or OFF (got '${GPUCAL_CUDA}')")
endif()
if(NOT GPUCAL_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(GPUCAL_NVCC nvcc
      HINTS ENV CUDACXX ENV CUDA_HOME ENV CUDA_PATH
      PATH_SUFFIXES bin
      PATHS /usr/local/cuda /usr/local/cuda/bin)
    if(GPUCAL_NVCC)
      set(CMAKE_CUDA_COMPILER "${GPUCAL_NVCC}" CACHE FILEPATH "CUDA compiler" FORCE)
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "${GPUCAL_CUDA_ARCHS}")
    endif()
    enable_language(CUDA)
    # CMake 3.25 knows no C++20 dialect flag for nvcc; device code needs only C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(GPUCAL_HAVE_CUDA ON)
  elseif(GPUCAL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "GPUCAL_CUDA=ON but nvcc was not found (looked on PATH, CUDACXX, CUDA_HOME, CUDA_PATH, /usr/local/cuda/bin)")
  else()
    message(STATUS "gpucal: nvcc not found; building the model and CLI only")
  endif()
endif()

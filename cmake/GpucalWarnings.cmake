# One INTERFACE target carries the warning flags; nvcc gets them through
# -Xcompiler so host code in .cu files is held to the same bar.
add_library(gpucal_warnings INTERFACE)
add_library(gpucal::warnings ALIAS gpucal_warnings)
set(_gpucal_host_warnings -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
if(GPUCAL_WERROR)
  list(APPEND _gpucal_host_warnings -Werror)
endif()
string(REPLACE ";" "," _gpucal_xcompiler "${_gpucal_host_warnings}")
target_compile_options(gpucal_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:${_gpucal_host_warnings}>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)

# CUDA is compiled when nvcc is found; nothing needs a GPU at run time (gpu/ probes for a device).
include(CheckLanguage)
check_language(CUDA)
if(CMAKE_CUDA_COMPILER AND NOT DEFINED KVT_ENABLE_CUDA)
  set(KVT_ENABLE_CUDA ON)
endif()
option(KVT_ENABLE_CUDA "Compile the CUDA tier and kernels" OFF)
if(KVT_ENABLE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)     # H100/H200; nvcc targets sm_90 without a GPU present
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)     # CUDA::cudart_static: binaries carry the runtime
  message(STATUS "kvtier: CUDA enabled (${CMAKE_CUDA_COMPILER_VERSION}, sm_${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "kvtier: CUDA disabled (no nvcc); CPU implementations only")
endif()

// Shared macros for host (C++) and device (CUDA) code.
#pragma once

#if defined(__CUDACC__)
#define VT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VT_HOST_DEVICE inline
#endif

// Shared device helpers of the 3dgp CUDA ops (3DGP ref §9). Plain CUDA: no torch headers, so every .cu file
// compiles with a bare `nvcc -c`. Half types are converted with intrinsics because torch builds extensions with
// -D__CUDA_NO_HALF_CONVERSIONS__ / -D__CUDA_NO_BFLOAT16_CONVERSIONS__.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "dtypes.h"

namespace threedgp {

// Per element type: the accumulation type (float, or double for double) and conversions to and from it.
template <typename T> struct Elem;
template <> struct Elem<float> {
    typedef float acc;
    __device__ __forceinline__ static float load(float v) { return v; }
    __device__ __forceinline__ static float store(float v) { return v; }
};
template <> struct Elem<double> {
    typedef double acc;
    __device__ __forceinline__ static double load(double v) { return v; }
    __device__ __forceinline__ static double store(double v) { return v; }
};
template <> struct Elem<__half> {
    typedef float acc;
    __device__ __forceinline__ static float load(__half v) { return __half2float(v); }
    __device__ __forceinline__ static __half store(float v) { return __float2half_rn(v); }
};
template <> struct Elem<__nv_bfloat16> {
    typedef float acc;
    __device__ __forceinline__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
    __device__ __forceinline__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

// A 1-D launch covering `n` items with 256-thread blocks (grid-stride loops inside the kernels).
inline unsigned int num_blocks(long long n, int threads = 256) {
    long long blocks = (n + threads - 1) / threads;
    if (blocks < 1) blocks = 1;
    if (blocks > 65535LL * 32) blocks = 65535LL * 32;
    return (unsigned int)blocks;
}

}  // namespace threedgp

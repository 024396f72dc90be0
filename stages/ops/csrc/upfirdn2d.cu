// upfirdn2d kernel: one thread per output pixel (3DGP ref §9). The backward pass is the same op with the filter
// flipped and up/down swapped (stages/ops/_upfirdn2d_cuda.py), so only a forward kernel is needed and
// derivatives of any order reuse it.
#include "common.cuh"
#include "upfirdn2d.h"

namespace threedgp {
namespace {

// First tap k >= 0 with (base + k) divisible by `up` (base may be negative).
__device__ __forceinline__ int first_tap(int base, int up) {
    int r = base % up;
    if (r < 0) r += up;
    return r == 0 ? 0 : up - r;
}

template <typename T> __global__ void upfirdn2d_kernel(const T* x, const float* taps, T* y, UpFirDn2dParams p) {
    typedef typename Elem<T>::acc A;
    const long long plane_out = (long long)p.out_h * p.out_w;
    const long long total = p.major * plane_out;
    const int up_h = p.in_h * p.up_y, up_w = p.in_w * p.up_x;  // size of the zero-inserted plane
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long m = i / plane_out;
        const int oy = (int)((i % plane_out) / p.out_w), ox = (int)(i % p.out_w);
        const int base_y = oy * p.down_y - p.pad_y0, base_x = ox * p.down_x - p.pad_x0;  // upsampled coords of tap 0
        const T* plane = x + m * (long long)p.in_h * p.in_w;
        A acc = A(0);
        // Only taps that land on a non-inserted (multiple-of-up) position inside the plane contribute.
        for (int ky = first_tap(base_y, p.up_y); ky < p.taps_h; ky += p.up_y) {
            const int uy = base_y + ky;
            if (uy < 0) continue;
            if (uy >= up_h) break;
            const T* row = plane + (long long)(uy / p.up_y) * p.in_w;
            for (int kx = first_tap(base_x, p.up_x); kx < p.taps_w; kx += p.up_x) {
                const int ux = base_x + kx;
                if (ux < 0) continue;
                if (ux >= up_w) break;
                acc += A(taps[ky * p.taps_w + kx]) * Elem<T>::load(row[ux / p.up_x]);
            }
        }
        y[i] = Elem<T>::store(acc);
    }
}

template <typename T> int launch(const void* x, const float* taps, void* y, const UpFirDn2dParams& p,
                                 cudaStream_t stream) {
    const long long total = p.major * (long long)p.out_h * p.out_w;
    upfirdn2d_kernel<T><<<num_blocks(total), 256, 0, stream>>>(static_cast<const T*>(x), taps,
                                                                static_cast<T*>(y), p);
    return (int)cudaGetLastError();
}

}  // namespace

int upfirdn2d_forward(const void* x, const float* taps, void* y, int dtype, const UpFirDn2dParams& p, void* stream) {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
        case kFloat32: return launch<float>(x, taps, y, p, s);
        case kFloat64: return launch<double>(x, taps, y, p, s);
        case kFloat16: return launch<__half>(x, taps, y, p, s);
        case kBFloat16: return launch<__nv_bfloat16>(x, taps, y, p, s);
        default: return (int)cudaErrorInvalidValue;
    }
}

}  // namespace threedgp

// Classical NeRF alpha compositing along rays: launcher interface (3DGP ref §1.5, §1.6 step 7).
#pragma once

namespace threedgp {

struct CompositeParams {
    long long rays;  // R
    int samples;     // S, sorted by t along each ray
    int chans;       // C
};

// Forward, one thread per ray. Inputs rgb [R, S, C], sigma_raw [R, S], t [R, S]; outputs rgb_out [R, C],
// depth [R, 1], weights [R, S] and the transmittance T [R, S] (kept for the backward pass). All share `dtype`
// (float32 or float64 only). Returns a cudaError_t as int (0 = success).
int composite_forward(const void* rgb, const void* sigma_raw, const void* t, void* rgb_out, void* depth,
                      void* weights, void* trans, int dtype, const CompositeParams& p, void* stream);

// Backward, one thread per ray, sweeping samples from last to first. Gradients in: g_rgb [R, C], g_depth [R, 1],
// g_weights [R, S]; gradients out: d_rgb [R, S, C], d_sigma_raw [R, S], d_t [R, S].
int composite_backward(const void* rgb, const void* sigma_raw, const void* t, const void* weights, const void* trans,
                       const void* g_rgb, const void* g_depth, const void* g_weights, void* d_rgb,
                       void* d_sigma_raw, void* d_t, int dtype, const CompositeParams& p, void* stream);

}  // namespace threedgp

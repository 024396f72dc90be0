// Torch binding of the 3dgp CUDA ops (3DGP ref §9): checks tensors, allocates outputs and calls the plain-CUDA
// launchers of bias_act.cu, upfirdn2d.cu and volume_composite.cu on the current stream. Autograd lives in
// Python (stages/ops/_*_cuda.py); these functions are the raw forward/backward passes.
#include <torch/extension.h>

#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "bias_act.h"
#include "dtypes.h"
#include "upfirdn2d.h"
#include "volume_composite.h"

namespace {

int dtype_code(const torch::Tensor& t) {
    switch (t.scalar_type()) {
        case torch::kFloat32: return threedgp::kFloat32;
        case torch::kFloat64: return threedgp::kFloat64;
        case torch::kFloat16: return threedgp::kFloat16;
        case torch::kBFloat16: return threedgp::kBFloat16;
        default: TORCH_CHECK(false, "3dgp ops: unsupported dtype ", t.scalar_type());
    }
    return -1;
}

void check_launch(int err, const char* what) {
    TORCH_CHECK(err == 0, "3dgp ops: ", what, " launch failed: ", cudaGetErrorString((cudaError_t)err));
}

void* stream_ptr() { return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()); }

threedgp::BiasActParams bias_act_params(const torch::Tensor& x, const torch::Tensor& b, int64_t dim, int64_t act,
                                        double alpha, double gain, double clamp) {
    TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "bias_act: x must be a contiguous CUDA tensor");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
    threedgp::BiasActParams p;
    p.numel = x.numel();
    p.step_b = 1;
    for (int64_t i = dim + 1; i < x.dim(); ++i) p.step_b *= x.size(i);
    p.size_b = 0;
    if (b.numel() > 0) {
        TORCH_CHECK(b.is_cuda() && b.is_contiguous() && b.dim() == 1 && b.size(0) == x.size(dim),
                    "bias_act: b must be a contiguous CUDA vector with x.shape[dim] entries");
        TORCH_CHECK(b.scalar_type() == x.scalar_type(), "bias_act: b and x must share a dtype");
        p.size_b = (int)b.size(0);
    }
    p.act = (int)act;
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    return p;
}

torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act, double alpha, double gain,
                               double clamp) {
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    auto p = bias_act_params(x, b, dim, act, alpha, gain, clamp);
    auto y = torch::empty_like(x);
    check_launch(threedgp::bias_act_forward(x.data_ptr(), p.size_b ? b.data_ptr() : nullptr, y.data_ptr(),
                                            dtype_code(x), p, stream_ptr()),
                 "bias_act_forward");
    return y;
}

torch::Tensor bias_act_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor b, int64_t dim, int64_t act,
                                double alpha, double gain, double clamp) {
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    auto p = bias_act_params(x, b, dim, act, alpha, gain, clamp);
    TORCH_CHECK(dy.sizes() == x.sizes() && dy.is_contiguous() && dy.scalar_type() == x.scalar_type(),
                "bias_act: dy must match x");
    auto dx = torch::empty_like(x);
    check_launch(threedgp::bias_act_backward(dy.data_ptr(), x.data_ptr(), p.size_b ? b.data_ptr() : nullptr,
                                             dx.data_ptr(), dtype_code(x), p, stream_ptr()),
                 "bias_act_backward");
    return dx;
}

// x [B, C, H, W] -> [B, C, out_h, out_w]; taps float32 [taps_h, taps_w] correlation taps.
torch::Tensor upfirdn2d_forward(torch::Tensor x, torch::Tensor taps, int64_t up_x, int64_t up_y, int64_t down_x,
                                int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    TORCH_CHECK(x.is_cuda() && x.is_contiguous() && x.dim() == 4, "upfirdn2d: x must be a contiguous CUDA [B,C,H,W]");
    TORCH_CHECK(taps.is_cuda() && taps.is_contiguous() && taps.dim() == 2 && taps.scalar_type() == torch::kFloat32,
                "upfirdn2d: taps must be a contiguous float32 CUDA [fh, fw] tensor");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: factors must be >= 1");
    threedgp::UpFirDn2dParams p;
    p.major = x.size(0) * x.size(1);
    p.in_h = (int)x.size(2);
    p.in_w = (int)x.size(3);
    p.up_x = (int)up_x;
    p.up_y = (int)up_y;
    p.down_x = (int)down_x;
    p.down_y = (int)down_y;
    p.pad_x0 = (int)pad_x0;
    p.pad_y0 = (int)pad_y0;
    p.taps_h = (int)taps.size(0);
    p.taps_w = (int)taps.size(1);
    p.out_h = (int)((x.size(2) * up_y + pad_y0 + pad_y1 - p.taps_h) / down_y + 1);
    p.out_w = (int)((x.size(3) * up_x + pad_x0 + pad_x1 - p.taps_w) / down_x + 1);
    TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1, "upfirdn2d: empty output");
    auto y = torch::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
    check_launch(threedgp::upfirdn2d_forward(x.data_ptr(), taps.data_ptr<float>(), y.data_ptr(), dtype_code(x), p,
                                             stream_ptr()),
                 "upfirdn2d_forward");
    return y;
}

threedgp::CompositeParams composite_params(const torch::Tensor& rgb, const torch::Tensor& sigma_raw,
                                           const torch::Tensor& t) {
    TORCH_CHECK(rgb.is_cuda() && rgb.is_contiguous() && rgb.dim() == 3, "composite: rgb must be contiguous [R,S,C]");
    TORCH_CHECK(sigma_raw.is_contiguous() && t.is_contiguous(), "composite: sigma_raw and t must be contiguous");
    TORCH_CHECK(sigma_raw.sizes() == t.sizes() && sigma_raw.size(0) == rgb.size(0) && sigma_raw.size(1) == rgb.size(1),
                "composite: shape mismatch");
    TORCH_CHECK(rgb.scalar_type() == sigma_raw.scalar_type() && rgb.scalar_type() == t.scalar_type(),
                "composite: dtype mismatch");
    threedgp::CompositeParams p;
    p.rays = rgb.size(0);
    p.samples = (int)rgb.size(1);
    p.chans = (int)rgb.size(2);
    return p;
}

std::vector<torch::Tensor> composite_forward(torch::Tensor rgb, torch::Tensor sigma_raw, torch::Tensor t) {
    const c10::cuda::OptionalCUDAGuard guard(rgb.device());
    auto p = composite_params(rgb, sigma_raw, t);
    auto rgb_out = torch::empty({p.rays, p.chans}, rgb.options());
    auto depth = torch::empty({p.rays, 1}, rgb.options());
    auto weights = torch::empty_like(t);
    auto trans = torch::empty_like(t);
    check_launch(threedgp::composite_forward(rgb.data_ptr(), sigma_raw.data_ptr(), t.data_ptr(), rgb_out.data_ptr(),
                                             depth.data_ptr(), weights.data_ptr(), trans.data_ptr(), dtype_code(rgb),
                                             p, stream_ptr()),
                 "composite_forward");
    return {rgb_out, depth, weights, trans};
}

std::vector<torch::Tensor> composite_backward(torch::Tensor rgb, torch::Tensor sigma_raw, torch::Tensor t,
                                              torch::Tensor weights, torch::Tensor trans, torch::Tensor g_rgb,
                                              torch::Tensor g_depth, torch::Tensor g_weights) {
    const c10::cuda::OptionalCUDAGuard guard(rgb.device());
    auto p = composite_params(rgb, sigma_raw, t);
    for (const auto& g : {weights, trans, g_rgb, g_depth, g_weights})
        TORCH_CHECK(g.is_contiguous() && g.scalar_type() == rgb.scalar_type(), "composite: bad backward input");
    auto d_rgb = torch::empty_like(rgb);
    auto d_sigma = torch::empty_like(sigma_raw);
    auto d_t = torch::empty_like(t);
    check_launch(threedgp::composite_backward(rgb.data_ptr(), sigma_raw.data_ptr(), t.data_ptr(), weights.data_ptr(),
                                              trans.data_ptr(), g_rgb.data_ptr(), g_depth.data_ptr(),
                                              g_weights.data_ptr(), d_rgb.data_ptr(), d_sigma.data_ptr(),
                                              d_t.data_ptr(), dtype_code(rgb), p, stream_ptr()),
                 "composite_backward");
    return {d_rgb, d_sigma, d_t};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "3dgp CUDA ops: bias_act, upfirdn2d, volume compositing (3DGP ref §9)";
    m.def("bias_act_forward", &bias_act_forward, "y = clamp(act(x + b) * gain)");
    m.def("bias_act_backward", &bias_act_backward, "dx of bias_act (db = dx summed over non-dim axes)");
    m.def("upfirdn2d_forward", &upfirdn2d_forward, "upsample, pad, FIR filter, downsample");
    m.def("composite_forward", &composite_forward, "NeRF alpha compositing -> rgb, depth, weights, transmittance");
    m.def("composite_backward", &composite_backward, "gradients of composite w.r.t. rgb, sigma_raw, t");
}

// Fused bias + activation + gain + clamp: launcher interface (3DGP ref §1.1, §9).
// Plain C++ with an opaque stream pointer, so both the .cu kernels and the torch binding include it.
#pragma once

namespace threedgp {

// Activation ids; must match stages/ops/bias_act.py ACTIVATIONS[*].cuda_id.
enum ActId : int {
    kLinear = 0,
    kRelu = 1,
    kLrelu = 2,
    kTanh = 3,
    kSigmoid = 4,
    kElu = 5,
    kSelu = 6,
    kSoftplus = 7,
    kSwish = 8,
};

struct BiasActParams {
    long long numel;   // elements of x (contiguous)
    long long step_b;  // product of x.shape[dim+1:]: consecutive elements sharing one bias entry
    int size_b;        // x.shape[dim], or 0 when there is no bias
    int act;           // ActId
    double alpha;      // lrelu slope
    double gain;       // output gain
    double clamp;      // clamp the output to [-clamp, clamp]; < 0 disables it
};

// y = clamp(act(x + b) * gain). x, b, y share `dtype` (DType). Returns a cudaError_t as int (0 = success).
int bias_act_forward(const void* x, const void* b, void* y, int dtype, const BiasActParams& p, void* stream);

// dx = dy * d/dx[clamp(act(x + b) * gain)]; the bias gradient is dx summed over all axes but `dim`.
int bias_act_backward(const void* dy, const void* x, const void* b, void* dx, int dtype, const BiasActParams& p,
                      void* stream);

}  // namespace threedgp

// Fused bias + activation + gain + clamp kernels, forward and backward (3DGP ref §1.1, §9).
// The reference semantics are stages/ops/bias_act.py:bias_act_ref; derivatives follow PyTorch's conventions
// at kinks (relu'(0) = 0, lrelu'(0) = alpha) and clamp passes gradients where -clamp <= y <= clamp.
#include "bias_act.h"
#include "common.cuh"

namespace threedgp {
namespace {

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSoftplusThreshold = 20.0;  // torch.nn.functional.softplus default (beta = 1)

template <typename A> __device__ __forceinline__ A sigmoid_of(A x) { return A(1) / (A(1) + exp(-x)); }

// act(x) for activation `act`.
template <typename A> __device__ A act_value(int act, A x, A alpha) {
    switch (act) {
        case kRelu: return x > A(0) ? x : A(0);
        case kLrelu: return x > A(0) ? x : x * alpha;
        case kTanh: return tanh(x);
        case kSigmoid: return sigmoid_of(x);
        case kElu: return x > A(0) ? x : expm1(x);
        case kSelu: return A(kSeluScale) * (x > A(0) ? x : A(kSeluAlpha) * expm1(x));
        case kSoftplus: return x > A(kSoftplusThreshold) ? x : log1p(exp(x));
        case kSwish: return x * sigmoid_of(x);
        default: return x;  // kLinear
    }
}

// d act(x) / dx.
template <typename A> __device__ A act_slope(int act, A x, A alpha) {
    switch (act) {
        case kRelu: return x > A(0) ? A(1) : A(0);
        case kLrelu: return x > A(0) ? A(1) : alpha;
        case kTanh: { A y = tanh(x); return A(1) - y * y; }
        case kSigmoid: { A s = sigmoid_of(x); return s * (A(1) - s); }
        case kElu: return x > A(0) ? A(1) : exp(x);
        case kSelu: return A(kSeluScale) * (x > A(0) ? A(1) : A(kSeluAlpha) * exp(x));
        case kSoftplus: return x > A(kSoftplusThreshold) ? A(1) : sigmoid_of(x);
        case kSwish: { A s = sigmoid_of(x); return s + x * s * (A(1) - s); }
        default: return A(1);  // kLinear
    }
}

template <typename T> __device__ __forceinline__ typename Elem<T>::acc biased_input(
        const T* x, const T* b, long long i, const BiasActParams& p) {
    typedef typename Elem<T>::acc A;
    A v = Elem<T>::load(x[i]);
    if (p.size_b > 0) v += Elem<T>::load(b[(i / p.step_b) % p.size_b]);
    return v;
}

template <typename T> __global__ void bias_act_forward_kernel(const T* x, const T* b, T* y, BiasActParams p) {
    typedef typename Elem<T>::acc A;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.numel;
         i += (long long)gridDim.x * blockDim.x) {
        A v = act_value<A>(p.act, biased_input(x, b, i, p), A(p.alpha)) * A(p.gain);
        if (p.clamp >= 0) v = v > A(p.clamp) ? A(p.clamp) : (v < A(-p.clamp) ? A(-p.clamp) : v);
        y[i] = Elem<T>::store(v);
    }
}

template <typename T> __global__ void bias_act_backward_kernel(const T* dy, const T* x, const T* b, T* dx,
                                                               BiasActParams p) {
    typedef typename Elem<T>::acc A;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.numel;
         i += (long long)gridDim.x * blockDim.x) {
        A pre = biased_input(x, b, i, p);
        A g = Elem<T>::load(dy[i]) * act_slope<A>(p.act, pre, A(p.alpha)) * A(p.gain);
        if (p.clamp >= 0) {  // the clamp passes gradients only where the unclamped output is inside the range
            A v = act_value<A>(p.act, pre, A(p.alpha)) * A(p.gain);
            if (v > A(p.clamp) || v < A(-p.clamp)) g = A(0);
        }
        dx[i] = Elem<T>::store(g);
    }
}

template <typename T> int launch_forward(const void* x, const void* b, void* y, const BiasActParams& p,
                                         cudaStream_t stream) {
    bias_act_forward_kernel<T><<<num_blocks(p.numel), 256, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(b), static_cast<T*>(y), p);
    return (int)cudaGetLastError();
}

template <typename T> int launch_backward(const void* dy, const void* x, const void* b, void* dx,
                                          const BiasActParams& p, cudaStream_t stream) {
    bias_act_backward_kernel<T><<<num_blocks(p.numel), 256, 0, stream>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(b), static_cast<T*>(dx), p);
    return (int)cudaGetLastError();
}

}  // namespace

int bias_act_forward(const void* x, const void* b, void* y, int dtype, const BiasActParams& p, void* stream) {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
        case kFloat32: return launch_forward<float>(x, b, y, p, s);
        case kFloat64: return launch_forward<double>(x, b, y, p, s);
        case kFloat16: return launch_forward<__half>(x, b, y, p, s);
        case kBFloat16: return launch_forward<__nv_bfloat16>(x, b, y, p, s);
        default: return (int)cudaErrorInvalidValue;
    }
}

int bias_act_backward(const void* dy, const void* x, const void* b, void* dx, int dtype, const BiasActParams& p,
                      void* stream) {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
        case kFloat32: return launch_backward<float>(dy, x, b, dx, p, s);
        case kFloat64: return launch_backward<double>(dy, x, b, dx, p, s);
        case kFloat16: return launch_backward<__half>(dy, x, b, dx, p, s);
        case kBFloat16: return launch_backward<__nv_bfloat16>(dy, x, b, dx, p, s);
        default: return (int)cudaErrorInvalidValue;
    }
}

}  // namespace threedgp

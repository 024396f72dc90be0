// Element types the launchers accept; the torch binding maps tensor dtypes to these codes (3DGP ref §9).
// Host-only, no CUDA or torch headers: included by the .cu kernels and by the C++ binding alike.
#pragma once

namespace threedgp {

enum DType : int {
    kFloat32 = 0,
    kFloat64 = 1,
    kFloat16 = 2,
    kBFloat16 = 3,
};

}  // namespace threedgp

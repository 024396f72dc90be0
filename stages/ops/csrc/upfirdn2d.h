// Upsample + pad + FIR filter + downsample: launcher interface (3DGP ref §9).
#pragma once

namespace threedgp {

struct UpFirDn2dParams {
    long long major;     // images x channels, each an [in_h, in_w] plane (contiguous)
    int in_h, in_w;      // input plane size
    int out_h, out_w;    // output plane size
    int up_x, up_y;      // zero-insertion factors
    int down_x, down_y;  // decimation factors
    int pad_x0, pad_y0;  // leading padding of the upsampled plane (negative = crop); trailing follows from out_*
    int taps_h, taps_w;  // filter size
};

// y[m, oy, ox] = sum_{ky, kx} taps[ky, kx] * padded[m, oy*down_y + ky, ox*down_x + kx], where `padded` is the
// zero-inserted input shifted by (pad_y0, pad_x0). `taps` are float32 correlation taps (already flipped and
// scaled by the gain). x and y share `dtype` (DType). Returns a cudaError_t as int (0 = success).
int upfirdn2d_forward(const void* x, const float* taps, void* y, int dtype, const UpFirDn2dParams& p, void* stream);

}  // namespace threedgp

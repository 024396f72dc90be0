/* CPU kernels of 3dgp's hot ops (issue 21 §1): the tri-plane sampler (stages/ops/triplane_sample.py, 3DGP ref §1.3),
 * the decoder MLP (stages/ops/point_mlp.py) and the gradient of D's bias + lrelu + clamp (stages/ops/act_grad.py).
 *
 * Plain C99 with GCC/Clang vector extensions: no torch headers, so the system C compiler builds it in about a second
 * (stages/ops/_cpu_build.py) and Python calls it through ctypes. The threads are torch's own intra-op OpenMP team:
 * Python hands over the runtime's GOMP_parallel / omp_get_thread_num / omp_get_num_threads (the GOMP ABI, which
 * libgomp and LLVM's libomp both export), and each thread of the team takes its share of independent work items
 * (no locks, no second thread pool competing with torch's spinning workers). Without them the work runs serially.
 *
 * Layout (what the channels-last backbone already produces, so no copy is needed):
 *   planes  [B, R, R, 3, F]  (row y, column x, plane p, feature f), F = 8 * nv
 *   points  [B, N, 3]        world coordinates
 *   feats   [B, N, F]        the MEAN over the 3 planes of the bilinear samples
 * Plane p is indexed by the point coordinates (AXIS_U[p], AXIS_V[p]): u picks the column, v the row. Sampling is
 * grid_sample's bilinear, align_corners=True, zero padding: texel i sits at u = -1 + 2 i / (R - 1) after dividing
 * the point by cube_scale; out-of-range corners read zero. A point whose texel coordinate is not finite or lies
 * outside (-1, R) on a plane reads zero there (and gets zero gradient from it).
 */
#include <math.h>

#include "cpu_team.h"

static const int AXIS_U[3] = {0, 0, 1};
static const int AXIS_V[3] = {1, 2, 2};

/* Texel coordinates of (u, v) on an R x R plane; 0 when the point reads nothing from this plane. */
static inline int locate(float u, float v, float half, int64_t R, int64_t *x0, int64_t *y0, float *tx, float *ty) {
    float ix = (u + 1.f) * half, iy = (v + 1.f) * half;
    if (!(ix > -1.f && ix < (float)R && iy > -1.f && iy < (float)R)) return 0;  /* also rejects NaN */
    float fx = floorf(ix), fy = floorf(iy);
    *x0 = (int64_t)fx;
    *y0 = (int64_t)fy;
    *tx = ix - fx;
    *ty = iy - fy;
    return 1;
}

typedef struct {
    const float *planes, *points;
    float *feats;
    int64_t N, R, nv;
    float inv_scale;
} forward_args_t;

/* feats[i] for the flat point indices i in [i0, i1) of the B*N points (nv a constant after inlining). */
INLINE void forward_body(const forward_args_t *a, int64_t i0, int64_t i1, const int64_t nv) {
    const float *restrict planes = a->planes, *restrict points = a->points;
    float *restrict feats = a->feats;
    const int64_t N = a->N, R = a->R;
    const float inv_scale = a->inv_scale;
    const int64_t F = 8 * nv, sx = 3 * F, sy = R * sx, plane_size = R * sy;
    const float half = 0.5f * (float)(R - 1);
    v8 acc[16];
    for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / N;
        const float *pl = planes + b * plane_size;
        const float *pt = points + i * 3;
        for (int64_t k = 0; k < nv; ++k) acc[k] = (v8){0};
        for (int p = 0; p < 3; ++p) {
            int64_t x0, y0;
            float tx, ty;
            if (!locate(pt[AXIS_U[p]] * inv_scale, pt[AXIS_V[p]] * inv_scale, half, R, &x0, &y0, &tx, &ty)) continue;
            for (int c = 0; c < 4; ++c) {
                const int64_t xc = x0 + (c & 1), yc = y0 + (c >> 1);
                if (xc < 0 || xc >= R || yc < 0 || yc >= R) continue;
                const float w = ((c & 1) ? tx : 1.f - tx) * ((c >> 1) ? ty : 1.f - ty);
                const float *src = pl + yc * sy + xc * sx + p * F;
                for (int64_t k = 0; k < nv; ++k) acc[k] += w * load8(src + 8 * k);
            }
        }
        float *out = feats + i * F;
        for (int64_t k = 0; k < nv; ++k) store8(out + 8 * k, acc[k] * (1.f / 3.f));
    }
}

/* The feature widths of the presets (8, 16, 32) get loops the compiler unrolls into registers. */
static void forward_range(const void *raw, int64_t i0, int64_t i1, int64_t worker) {
    (void)worker;
    const forward_args_t *a = (const forward_args_t *)raw;
    switch (a->nv) {
        case 1: forward_body(a, i0, i1, 1); break;
        case 2: forward_body(a, i0, i1, 2); break;
        case 4: forward_body(a, i0, i1, 4); break;
        default: forward_body(a, i0, i1, a->nv);
    }
}

void threedgp_triplane_forward(const float *planes, const float *points, float *feats, int64_t B, int64_t N,
                               int64_t R, int64_t nv, float inv_scale, const team_t *team) {
    const forward_args_t args = {planes, points, feats, N, R, nv, inv_scale};
    run_job(forward_range, &args, B * N, team);
}

typedef struct {
    const float *planes, *points, *grad_feats;
    float *grad_planes, *grad_part;
    int64_t N, R, nv;
    float inv_scale;
    int want_planes, want_points;
} backward_args_t;

/* Gradients for the work items t in [t0, t1) of the B*3 (image, plane) pairs, t = 3 b + p.
 *   grad_planes [B, R, R, 3, F]: accumulated into (zero it first) when want_planes; item t only touches its slab.
 *   grad_part   [B, 3, N, 2]: d loss / d (u, v) of the point on plane p (world units) when want_points; the caller
 *               adds the two planes that share each axis.
 */
INLINE void backward_body(const backward_args_t *a, int64_t t0, int64_t t1, const int64_t nv) {
    const float *restrict planes = a->planes, *restrict points = a->points, *restrict grad_feats = a->grad_feats;
    float *restrict grad_planes = a->grad_planes, *restrict grad_part = a->grad_part;
    const int64_t N = a->N, R = a->R;
    const float inv_scale = a->inv_scale;
    const int want_planes = a->want_planes, want_points = a->want_points;
    const int64_t F = 8 * nv, sx = 3 * F, sy = R * sx, plane_size = R * sy;
    const float half = 0.5f * (float)(R - 1), third = 1.f / 3.f, dscale = half * inv_scale * third;
    v8 g[16];
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / 3;
        const int p = (int)(t % 3);
        const float *pl = planes + b * plane_size + p * F;
        float *gpl = want_planes ? grad_planes + b * plane_size + p * F : 0;
        float *gpart = want_points ? grad_part + t * N * 2 : 0;
        for (int64_t n = 0; n < N; ++n) {
            const float *pt = points + (b * N + n) * 3;
            int64_t x0, y0;
            float tx, ty;
            float du = 0.f, dv = 0.f;
            if (locate(pt[AXIS_U[p]] * inv_scale, pt[AXIS_V[p]] * inv_scale, half, R, &x0, &y0, &tx, &ty)) {
                const float *gf = grad_feats + (b * N + n) * F;
                for (int64_t k = 0; k < nv; ++k) g[k] = load8(gf + 8 * k);
                v8 au = {0}, av = {0};
                for (int c = 0; c < 4; ++c) {
                    const int64_t xc = x0 + (c & 1), yc = y0 + (c >> 1);
                    if (xc < 0 || xc >= R || yc < 0 || yc >= R) continue;
                    const float wx = (c & 1) ? tx : 1.f - tx, wy = (c >> 1) ? ty : 1.f - ty;
                    const int64_t off = yc * sy + xc * sx;
                    if (want_planes) {
                        const float w = wx * wy * third;
                        for (int64_t k = 0; k < nv; ++k) store8(gpl + off + 8 * k, load8(gpl + off + 8 * k) + w * g[k]);
                    }
                    if (want_points) {  /* d w / d tx = +-wy, d w / d ty = +-wx */
                        const float su = (c & 1) ? wy : -wy, sv = (c >> 1) ? wx : -wx;
                        for (int64_t k = 0; k < nv; ++k) {
                            const v8 prod = g[k] * load8(pl + off + 8 * k);
                            au += su * prod;
                            av += sv * prod;
                        }
                    }
                }
                du = hsum8(au) * dscale;
                dv = hsum8(av) * dscale;
            }
            if (want_points) {
                gpart[2 * n] = du;
                gpart[2 * n + 1] = dv;
            }
        }
    }
}

static void backward_range(const void *raw, int64_t t0, int64_t t1, int64_t worker) {
    (void)worker;
    const backward_args_t *a = (const backward_args_t *)raw;
    switch (a->nv) {
        case 1: backward_body(a, t0, t1, 1); break;
        case 2: backward_body(a, t0, t1, 2); break;
        case 4: backward_body(a, t0, t1, 4); break;
        default: backward_body(a, t0, t1, a->nv);
    }
}

void threedgp_triplane_backward(const float *planes, const float *points, const float *grad_feats, float *grad_planes,
                                float *grad_part, int64_t B, int64_t N, int64_t R, int64_t nv, float inv_scale,
                                int want_planes, int want_points, const team_t *team) {
    const backward_args_t args = {planes, points, grad_feats, grad_planes, grad_part, N, R, nv, inv_scale,
                                  want_planes, want_points};
    run_job(backward_range, &args, B * 3, team);
}

/* ---------------------------------------------------------------------------------------------------------------
 * The decoding MLP of 3DGP ref §1.3 for its two-layer form: y = W2 lrelu(W1 x + b1, 0.2) + b2, per point, with the
 * equalized-lr and activation gains already folded into the weights by the caller. x [M, F], y [M, O]; F, H
 * multiples of 8 (H <= 128), O <= 8. The [M, H] hidden activations never reach memory: the backward recomputes
 * them per point.
 *   w1t [F, H] (W1 transposed), w1 [H, F], b1 [H], w2 [O, H], b2 [O].
 */
#define MLP_MAX_HV 16
#define MLP_BLOCK 64    /* points per partial weight-gradient sum (keeps float sums short) */
#define MLP_CHUNK 4096  /* points per work item; each item sums into its own row of the partial buffer, so the
                           result does not depend on how many threads share the items */

typedef struct {
    const float *x, *w1t, *w1, *b1, *w2, *b2;
    float *y;
    const float *grad_y;
    float *grad_x, *partial;  /* partial: [chunks, F*H + H + O*H + O] weight/bias gradient sums */
    int64_t F, H, O, M;
} mlp_args_t;

INLINE void mlp_hidden(const mlp_args_t *a, const float *x, v8 *h, const int64_t F, const int64_t hv) {
    for (int64_t k = 0; k < hv; ++k) h[k] = load8(a->b1 + 8 * k);
    for (int64_t f = 0; f < F; ++f) {
        const float xf = x[f];
        const float *row = a->w1t + f * 8 * hv;
        for (int64_t k = 0; k < hv; ++k) h[k] += xf * load8(row + 8 * k);
    }
}

INLINE void mlp_forward_body(const mlp_args_t *a, int64_t i0, int64_t i1, const int64_t F, const int64_t hv,
                             const int64_t O) {
    v8 h[MLP_MAX_HV];
    for (int64_t i = i0; i < i1; ++i) {
        mlp_hidden(a, a->x + i * F, h, F, hv);
        for (int64_t k = 0; k < hv; ++k) {
            const v8 zero = {0};
            h[k] = select8(h[k] > zero, h[k], 0.2f * h[k]);  /* lrelu; the sqrt(2) gain is folded into W1, b1 */
        }
        for (int64_t o = 0; o < O; ++o) {
            v8 acc = {0};
            const float *row = a->w2 + o * 8 * hv;
            for (int64_t k = 0; k < hv; ++k) acc += h[k] * load8(row + 8 * k);
            a->y[i * O + o] = a->b2[o] + hsum8(acc);
        }
    }
}

/* (F, H, O) of the presets -- SMALL and the paper's (16 | 32, 64, 4), tiny/demo (8, 32, 4) -- get constant loop
 * bounds, so the hidden layer lives in registers; other shapes run the same code with variable bounds. */
#define MLP_DISPATCH(BODY, a, i0, i1)                                                   \
    do {                                                                                \
        if (a->O == 4 && a->H == 64 && a->F == 16) BODY(a, i0, i1, 16, 8, 4);           \
        else if (a->O == 4 && a->H == 64 && a->F == 32) BODY(a, i0, i1, 32, 8, 4);      \
        else if (a->O == 4 && a->H == 32 && a->F == 8) BODY(a, i0, i1, 8, 4, 4);        \
        else BODY(a, i0, i1, a->F, a->H / 8, a->O);                                     \
    } while (0)

static void mlp_forward_range(const void *raw, int64_t i0, int64_t i1, int64_t worker) {
    (void)worker;
    const mlp_args_t *a = (const mlp_args_t *)raw;
    MLP_DISPATCH(mlp_forward_body, a, i0, i1);
}

void threedgp_mlp_forward(const float *x, const float *w1t, const float *b1, const float *w2, const float *b2,
                          float *y, int64_t M, int64_t F, int64_t H, int64_t O, const team_t *team) {
    const mlp_args_t args = {x, w1t, 0, b1, w2, b2, y, 0, 0, 0, F, H, O, M};
    run_job(mlp_forward_range, &args, M, team);
}

INLINE void mlp_backward_body(const mlp_args_t *a, int64_t c0, int64_t c1, const int64_t F, const int64_t hv,
                              const int64_t O) {
    const int64_t H = 8 * hv;
    const int64_t size = F * H + H + O * H + O;
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
        const int64_t i0 = chunk * MLP_CHUNK, i1 = i0 + MLP_CHUNK < a->M ? i0 + MLP_CHUNK : a->M;
        float *total = a->partial + chunk * size;  /* this chunk's sums, zeroed by the caller */
        float block[128 * 128 + 128 + 8 * 128 + 8];  /* F*H + H + O*H + O for F, H <= 128, O <= 8 (checked by the caller) */
        float *gw1t = block, *gb1 = block + F * H, *gw2 = gb1 + H, *gb2 = gw2 + O * H;
        v8 h[MLP_MAX_HV], gh[MLP_MAX_HV];
        float ghs[8 * MLP_MAX_HV];
        for (int64_t start = i0; start < i1; start += MLP_BLOCK) {
            const int64_t stop = start + MLP_BLOCK < i1 ? start + MLP_BLOCK : i1;
            memset(block, 0, sizeof(float) * size);
            for (int64_t i = start; i < stop; ++i) {
                const float *x = a->x + i * F, *gy = a->grad_y + i * O;
                mlp_hidden(a, x, h, F, hv);
                for (int64_t k = 0; k < hv; ++k) gh[k] = (v8){0};
                for (int64_t o = 0; o < O; ++o) {  /* d y / d h and the second layer's gradients */
                    const float go = gy[o];
                    const float *row = a->w2 + o * H;
                    for (int64_t k = 0; k < hv; ++k) gh[k] += go * load8(row + 8 * k);
                    gb2[o] += go;
                }
                for (int64_t k = 0; k < hv; ++k) {
                    const v8 zero = {0}, one = zero + 1.f, slope = zero + 0.2f;
                    const v8i positive = h[k] > zero;
                    const v8 act = select8(positive, h[k], 0.2f * h[k]);
                    for (int64_t o = 0; o < O; ++o) store8(gw2 + o * H + 8 * k, load8(gw2 + o * H + 8 * k) + gy[o] * act);
                    gh[k] *= select8(positive, one, slope);  /* through the lrelu */
                    store8(gb1 + 8 * k, load8(gb1 + 8 * k) + gh[k]);
                    store8(ghs + 8 * k, gh[k]);
                }
                for (int64_t f = 0; f < F; ++f) {  /* first layer's weight gradient, W1^T layout */
                    const float xf = x[f];
                    float *row = gw1t + f * H;
                    for (int64_t k = 0; k < hv; ++k) store8(row + 8 * k, load8(row + 8 * k) + xf * gh[k]);
                }
                if (a->grad_x) {  /* d y / d x = W1^T (d y / d h) */
                    const int64_t fv = F / 8;
                    v8 gx[16];
                    for (int64_t k = 0; k < fv; ++k) gx[k] = (v8){0};
                    for (int64_t j = 0; j < H; ++j) {
                        const float g = ghs[j];
                        const float *row = a->w1 + j * F;
                        for (int64_t k = 0; k < fv; ++k) gx[k] += g * load8(row + 8 * k);
                    }
                    for (int64_t k = 0; k < fv; ++k) store8(a->grad_x + i * F + 8 * k, gx[k]);
                }
            }
            for (int64_t j = 0; j < size; ++j) total[j] += block[j];
        }
    }
}

static void mlp_backward_range(const void *raw, int64_t c0, int64_t c1, int64_t worker) {
    (void)worker;
    const mlp_args_t *a = (const mlp_args_t *)raw;
    MLP_DISPATCH(mlp_backward_body, a, c0, c1);
}

void threedgp_mlp_backward(const float *x, const float *w1t, const float *w1, const float *b1, const float *w2,
                           const float *grad_y, float *grad_x, float *partial, int64_t M, int64_t F, int64_t H,
                           int64_t O, const team_t *team) {
    const mlp_args_t args = {x, w1t, w1, b1, w2, 0, 0, grad_y, grad_x, partial, F, H, O, M};
    run_job(mlp_backward_range, &args, (M + MLP_CHUNK - 1) / MLP_CHUNK, team);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Gradient through lrelu + clamp given the activation's OUTPUT y: gx = gy * (y > 0 ? 1 : slope) * (|y| < clamp).
 * clamp <= 0 means no clamp. Elementwise over n floats (any layout, the same for gy, y and gx).
 */
typedef struct {
    const float *gy, *y;
    float *gx;
    float slope, clamp;
    int64_t n_total;
} act_args_t;

#define ACT_CHUNK 4096

static void act_grad_range(const void *raw, int64_t c0, int64_t c1, int64_t worker) {
    (void)worker;
    const act_args_t *a = (const act_args_t *)raw;
    const float slope = a->slope, clamp = a->clamp;
    const int64_t i0 = c0 * ACT_CHUNK, i1 = c1 * ACT_CHUNK;
    const int64_t n = a->n_total < i1 ? a->n_total : i1;
    for (int64_t i = i0; i < n; ++i) {
        const float y = a->y[i];
        float g = a->gy[i] * (y > 0.f ? 1.f : slope);
        if (clamp > 0.f && !(fabsf(y) < clamp)) g = 0.f;
        a->gx[i] = g;
    }
}

void threedgp_act_grad(const float *gy, const float *y, float *gx, int64_t n, float slope, float clamp,
                       const team_t *team) {
    const act_args_t args = {gy, y, gx, slope, clamp, n};
    run_job(act_grad_range, &args, (n + ACT_CHUNK - 1) / ACT_CHUNK, team);
}

/* ---------------------------------------------------------------------------------------------------------------
 * The synthesis layer's training path (3DGP ref §1.2, non-fused modconv), channels-last tensors [B, P, C] (P = H*W
 * pixels, channel innermost, C a multiple of 8, at most 128):
 *   modulate   x' = x * s[b, :]                            backward: gx = g * s, gs[b, :] = sum_p g * x
 *   epilogue   y = lrelu(c * d[b, :] + bias + n[b, p], 0.2)  (the gains folded in by the caller; n may be absent
 *              or shared by the batch) backward: gpre = gy * lrelu'(y); gc = gpre * d; gd[b, :] = sum_p gpre * c;
 *              gbias = sum_{b, p} gpre; gn[b, p] = sum_c gpre.
 * Sums over pixels are accumulated per block of PIX_BLOCK pixels, then into the row of a partial buffer
 * [chunks, B, C] that belongs to the block's chunk of PIX_CHUNK blocks (the caller zeroes and sums it).
 */
#define PIX_BLOCK 64
#define PIX_CHUNK 64 /* blocks per work item of the backward passes (4096 pixels) */

static int64_t pixel_blocks(int64_t B, int64_t P) { return (B * P + PIX_BLOCK - 1) / PIX_BLOCK; }
static int64_t pixel_chunks(int64_t B, int64_t P) { return (pixel_blocks(B, P) + PIX_CHUNK - 1) / PIX_CHUNK; }

typedef struct {
    const float *a, *b, *scale, *bias, *noise;
    float *out, *out2, *part, *part2;
    int64_t B, P, C, noise_mode; /* noise_mode: 0 none, 1 per image [B, P], 2 shared [P] */
} pix_args_t;

INLINE void epilogue_forward_body(const pix_args_t *g, int64_t k0, int64_t k1, const int64_t cv) {
    const int64_t P = g->P, C = 8 * cv, total = g->B * P;
    for (int64_t k = k0; k < k1; ++k) {
        const int64_t i0 = k * PIX_BLOCK, i1 = i0 + PIX_BLOCK < total ? i0 + PIX_BLOCK : total;
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t bi = i / P, p = i % P;
            const float n = g->noise_mode == 1 ? g->noise[i] : g->noise_mode == 2 ? g->noise[p] : 0.f;
            const float *c = g->a + i * C, *d = g->scale + bi * C;
            float *y = g->out + i * C;
            for (int64_t v = 0; v < cv; ++v) {
                const v8 pre = load8(c + 8 * v) * load8(d + 8 * v) + load8(g->bias + 8 * v) + n;
                const v8 zero = {0};
                store8(y + 8 * v, select8(pre > zero, pre, 0.2f * pre));
            }
        }
    }
}

INLINE void epilogue_backward_body(const pix_args_t *g, int64_t k0, int64_t k1, const int64_t cv) {
    /* a = gy, b = y, out = gc, out2 = gn (or NULL), scale = d, noise = c (the conv output), part = gd, part2 = gbias */
    const int64_t P = g->P, B = g->B, C = 8 * cv, total = B * P;
    v8 gd[16], gb[16];
    for (int64_t k = k0; k < k1; ++k) {
        float *gd_total = g->part + (k / PIX_CHUNK) * B * C, *gb_total = g->part2 + (k / PIX_CHUNK) * C;
        const int64_t i0 = k * PIX_BLOCK, i1 = i0 + PIX_BLOCK < total ? i0 + PIX_BLOCK : total;
        int64_t current = i0 / P;
        for (int64_t v = 0; v < cv; ++v) gd[v] = gb[v] = (v8){0};
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t bi = i / P;
            if (bi != current) { /* a block may straddle two images */
                for (int64_t v = 0; v < cv; ++v) {
                    store8(gd_total + current * C + 8 * v, load8(gd_total + current * C + 8 * v) + gd[v]);
                    gd[v] = (v8){0};
                }
                current = bi;
            }
            const float *gy = g->a + i * C, *y = g->b + i * C, *c = g->noise + i * C, *d = g->scale + bi * C;
            float *gc = g->out + i * C;
            v8 gn = {0};
            for (int64_t v = 0; v < cv; ++v) {
                const v8 zero = {0}, one = zero + 1.f, slope = zero + 0.2f;
                const v8 gpre = load8(gy + 8 * v) * select8(load8(y + 8 * v) > zero, one, slope);
                store8(gc + 8 * v, gpre * load8(d + 8 * v));
                gd[v] += gpre * load8(c + 8 * v);
                gb[v] += gpre;
                gn += gpre;
            }
            if (g->out2) g->out2[i] = hsum8(gn);
        }
        for (int64_t v = 0; v < cv; ++v) {
            store8(gd_total + current * C + 8 * v, load8(gd_total + current * C + 8 * v) + gd[v]);
            store8(gb_total + 8 * v, load8(gb_total + 8 * v) + gb[v]);
        }
    }
}

INLINE void modulate_backward_body(const pix_args_t *g, int64_t k0, int64_t k1, const int64_t cv) {
    /* a = g, b = x, scale = s, out = gx, part = gs */
    const int64_t P = g->P, B = g->B, C = 8 * cv, total = B * P;
    v8 gs[16];
    for (int64_t k = k0; k < k1; ++k) {
        float *gs_total = g->part + (k / PIX_CHUNK) * B * C;
        const int64_t i0 = k * PIX_BLOCK, i1 = i0 + PIX_BLOCK < total ? i0 + PIX_BLOCK : total;
        int64_t current = i0 / P;
        for (int64_t v = 0; v < cv; ++v) gs[v] = (v8){0};
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t bi = i / P;
            if (bi != current) {
                for (int64_t v = 0; v < cv; ++v) {
                    store8(gs_total + current * C + 8 * v, load8(gs_total + current * C + 8 * v) + gs[v]);
                    gs[v] = (v8){0};
                }
                current = bi;
            }
            const float *gg = g->a + i * C, *x = g->b + i * C, *s = g->scale + bi * C;
            float *gx = g->out + i * C;
            for (int64_t v = 0; v < cv; ++v) {
                const v8 gv = load8(gg + 8 * v);
                store8(gx + 8 * v, gv * load8(s + 8 * v));
                gs[v] += gv * load8(x + 8 * v);
            }
        }
        for (int64_t v = 0; v < cv; ++v)
            store8(gs_total + current * C + 8 * v, load8(gs_total + current * C + 8 * v) + gs[v]);
    }
}

#define PIX_DISPATCH(BODY, g, k0, k1, ...)                 \
    do {                                                   \
        switch ((g)->C / 8) {                              \
            case 1: BODY(g, k0, k1, __VA_ARGS__ 1); break; \
            case 2: BODY(g, k0, k1, __VA_ARGS__ 2); break; \
            case 4: BODY(g, k0, k1, __VA_ARGS__ 4); break; \
            case 8: BODY(g, k0, k1, __VA_ARGS__ 8); break; \
            case 16: BODY(g, k0, k1, __VA_ARGS__ 16); break; \
            default: BODY(g, k0, k1, __VA_ARGS__(g)->C / 8); \
        }                                                  \
    } while (0)

static void epilogue_forward_range(const void *raw, int64_t k0, int64_t k1, int64_t worker) {
    (void)worker;
    PIX_DISPATCH(epilogue_forward_body, (const pix_args_t *)raw, k0, k1, );
}

/* The backward passes hand out whole chunks of PIX_CHUNK blocks, each summing into its own row of the partial
 * buffers: the sums do not depend on how many threads share the work. */
static void epilogue_backward_range(const void *raw, int64_t c0, int64_t c1, int64_t worker) {
    (void)worker;
    const pix_args_t *g = (const pix_args_t *)raw;
    const int64_t blocks = pixel_blocks(g->B, g->P), k1 = c1 * PIX_CHUNK < blocks ? c1 * PIX_CHUNK : blocks;
    PIX_DISPATCH(epilogue_backward_body, g, c0 * PIX_CHUNK, k1, );
}

static void modulate_backward_range(const void *raw, int64_t c0, int64_t c1, int64_t worker) {
    (void)worker;
    const pix_args_t *g = (const pix_args_t *)raw;
    const int64_t blocks = pixel_blocks(g->B, g->P), k1 = c1 * PIX_CHUNK < blocks ? c1 * PIX_CHUNK : blocks;
    PIX_DISPATCH(modulate_backward_body, g, c0 * PIX_CHUNK, k1, );
}

void threedgp_epilogue_forward(const float *c, const float *d, const float *bias, const float *noise,
                               int64_t noise_mode, float *y, int64_t B, int64_t P, int64_t C, const team_t *team) {
    const pix_args_t args = {c, 0, d, bias, noise, y, 0, 0, 0, B, P, C, noise_mode};
    run_job(epilogue_forward_range, &args, pixel_blocks(B, P), team);
}

void threedgp_epilogue_backward(const float *gy, const float *y, const float *c, const float *d, float *gc,
                                float *gn, float *gd_part, float *gbias_part, int64_t B, int64_t P, int64_t C,
                                const team_t *team) {
    const pix_args_t args = {gy, y, d, 0, c, gc, gn, gd_part, gbias_part, B, P, C, 0};
    run_job(epilogue_backward_range, &args, pixel_chunks(B, P), team);
}

void threedgp_modulate_backward(const float *g, const float *x, const float *s, float *gx, float *gs_part,
                                int64_t B, int64_t P, int64_t C, const team_t *team) {
    const pix_args_t args = {g, x, s, 0, 0, gx, 0, gs_part, 0, B, P, C, 0};
    run_job(modulate_backward_range, &args, pixel_chunks(B, P), team);
}

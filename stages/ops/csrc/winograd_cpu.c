/* Winograd F(4x4, 3x3) convolution on CPU (Lavin & Gray 2016; stages/ops/winograd.py): the 3x3, stride-1, pad-1
 * convolutions of D and G, forward, input gradient and weight gradient, as 36 independent matrix products
 * (torch.bmm) between transforms done here.
 *
 * A 4x4 output tile needs a 6x6 input tile; with  V = B^T d B  (input tile d),  U = G g G^T  (3x3 kernel g) and
 * M = sum over input channels of U * V (element-wise, per tile position p = 6 * row + column),  Y = A^T M A.
 * The weight gradient is that computation's transpose:  dU = sum over tiles of (A gy A^T) * V,  dg = G^T dU G.
 * Points 0, 1, -1, 2, -2 (the interpolation points of cuDNN's and oneDNN's F(4x4, 3x3)); in float32 the result
 * differs from a direct convolution by about 1e-5 of its largest value (tested).
 *
 * Layouts (channel innermost, what channels-last torch tensors hold):
 *   x, y, gy   [N, H, W, C]           images; tiles t = (n, th, tw), T = N * ceil(H/4) * ceil(W/4), row-major
 *   V, GY, M   [36, T, C]             transformed tiles (the batched GEMM's operands / result)
 * The kernel's transforms (U = G g G^T and dg = G^T dU G, 36 x 9 matrix products) are torch.mm calls in
 * stages/ops/winograd.py. C is a multiple of 8. Work items are tiles; each writes its own outputs, so nothing
 * depends on the thread count.
 */
#include "cpu_team.h"

typedef struct {
    const float *src;
    float *dst;
    int64_t N, H, W, C, tH, tW, T;
} tile_args_t;

static inline void tile_origin(const tile_args_t *a, int64_t t, int64_t *n, int64_t *y0, int64_t *x0) {
    *n = t / (a->tH * a->tW);
    *y0 = 4 * ((t / a->tW) % a->tH);
    *x0 = 4 * (t % a->tW);
}

/* B^T d over six values (one column or one row of a 6x6 tile). */
#define BT6(d0, d1, d2, d3, d4, d5, o)          \
    do {                                        \
        (o)[0] = 4 * (d0) - 5 * (d2) + (d4);    \
        (o)[1] = (d3) + (d4) - 4 * ((d1) + (d2)); \
        (o)[2] = 4 * ((d1) - (d2)) + (d4) - (d3); \
        (o)[3] = 2 * ((d3) - (d1)) + (d4) - (d2); \
        (o)[4] = 2 * ((d1) - (d3)) + (d4) - (d2); \
        (o)[5] = 4 * (d1) - 5 * (d3) + (d5);    \
    } while (0)

/* A^T m over six values -> four. */
#define AT6(m0, m1, m2, m3, m4, m5, o)                                                           \
    do {                                                                                         \
        const v8 a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), d_ = (m3) - (m4);         \
        (o)[0] = (m0) + a_ + c_;                                                                 \
        (o)[1] = b_ + 2 * d_;                                                                    \
        (o)[2] = a_ + 4 * c_;                                                                    \
        (o)[3] = b_ + 8 * d_ + (m5);                                                             \
    } while (0)

/* A g over four values -> six (the transpose of AT6). */
#define A4(g0, g1, g2, g3, o)                               \
    do {                                                    \
        const v8 e_ = (g0) + (g2), f_ = (g1) + (g3);        \
        const v8 h_ = (g0) + 4 * (g2), k_ = 2 * (g1) + 8 * (g3); \
        (o)[0] = (g0);                                      \
        (o)[1] = e_ + f_;                                   \
        (o)[2] = e_ - f_;                                   \
        (o)[3] = h_ + k_;                                   \
        (o)[4] = h_ - k_;                                   \
        (o)[5] = (g3);                                      \
    } while (0)

/* V[p, t, :] = (B^T d B)[p] for the 6x6 input tile at (4 th - 1, 4 tw - 1); zero padding outside the image. */
static void input_range(const void *raw, int64_t t0, int64_t t1, int64_t worker) {
    (void)worker;
    const tile_args_t *a = (const tile_args_t *)raw;
    const int64_t H = a->H, W = a->W, C = a->C, TC = a->T * C;
    const v8 zero = {0};
    for (int64_t t = t0; t < t1; ++t) {
        int64_t n, y0, x0;
        tile_origin(a, t, &n, &y0, &x0);
        const float *at[6][6];
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 6; ++j) {
                const int64_t yy = y0 - 1 + i, xx = x0 - 1 + j;
                at[i][j] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? a->src + ((n * H + yy) * W + xx) * C : 0;
            }
        float *out = a->dst + t * C;
        for (int64_t c = 0; c < C; c += 8) {
            v8 u[6][6];
            for (int j = 0; j < 6; ++j) {
                v8 d[6], o[6];
                for (int i = 0; i < 6; ++i) d[i] = at[i][j] ? load8(at[i][j] + c) : zero;
                BT6(d[0], d[1], d[2], d[3], d[4], d[5], o);
                for (int i = 0; i < 6; ++i) u[i][j] = o[i];
            }
            for (int i = 0; i < 6; ++i) {
                v8 o[6];
                BT6(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], o);
                for (int j = 0; j < 6; ++j) store8(out + (6 * i + j) * TC + c, o[j]);
            }
        }
    }
}

/* y[4x4 tile] = A^T M[:, t, :] A, cropped at the image border. */
static void output_range(const void *raw, int64_t t0, int64_t t1, int64_t worker) {
    (void)worker;
    const tile_args_t *a = (const tile_args_t *)raw;
    const int64_t H = a->H, W = a->W, C = a->C, TC = a->T * C;
    for (int64_t t = t0; t < t1; ++t) {
        int64_t n, y0, x0;
        tile_origin(a, t, &n, &y0, &x0);
        const float *in = a->src + t * C;
        for (int64_t c = 0; c < C; c += 8) {
            v8 s[4][6];
            for (int j = 0; j < 6; ++j) {
                v8 m[6], o[4];
                for (int i = 0; i < 6; ++i) m[i] = load8(in + (6 * i + j) * TC + c);
                AT6(m[0], m[1], m[2], m[3], m[4], m[5], o);
                for (int i = 0; i < 4; ++i) s[i][j] = o[i];
            }
            for (int i = 0; i < 4 && y0 + i < H; ++i) {
                v8 r[4];
                AT6(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], r);
                for (int j = 0; j < 4 && x0 + j < W; ++j) store8(a->dst + ((n * H + y0 + i) * W + x0 + j) * C + c, r[j]);
            }
        }
    }
}

/* GY[p, t, :] = (A g A^T)[p] for the 4x4 gradient tile g (zero outside the image): the transpose of output_range. */
static void grad_output_range(const void *raw, int64_t t0, int64_t t1, int64_t worker) {
    (void)worker;
    const tile_args_t *a = (const tile_args_t *)raw;
    const int64_t H = a->H, W = a->W, C = a->C, TC = a->T * C;
    const v8 zero = {0};
    for (int64_t t = t0; t < t1; ++t) {
        int64_t n, y0, x0;
        tile_origin(a, t, &n, &y0, &x0);
        float *out = a->dst + t * C;
        for (int64_t c = 0; c < C; c += 8) {
            v8 s[6][4];
            for (int j = 0; j < 4; ++j) {
                v8 g[4], o[6];
                for (int i = 0; i < 4; ++i)
                    g[i] = (y0 + i < H && x0 + j < W) ? load8(a->src + ((n * H + y0 + i) * W + x0 + j) * C + c) : zero;
                A4(g[0], g[1], g[2], g[3], o);
                for (int i = 0; i < 6; ++i) s[i][j] = o[i];
            }
            for (int i = 0; i < 6; ++i) {
                v8 o[6];
                A4(s[i][0], s[i][1], s[i][2], s[i][3], o);
                for (int j = 0; j < 6; ++j) store8(out + (6 * i + j) * TC + c, o[j]);
            }
        }
    }
}

static void run_tiles(void (*body)(const void *, int64_t, int64_t, int64_t), const float *src, float *dst,
                      int64_t N, int64_t H, int64_t W, int64_t C, const team_t *team) {
    const int64_t tH = (H + 3) / 4, tW = (W + 3) / 4;
    const tile_args_t args = {src, dst, N, H, W, C, tH, tW, N * tH * tW};
    run_job(body, &args, args.T, team);
}

void threedgp_wino_input(const float *x, float *V, int64_t N, int64_t H, int64_t W, int64_t C, const team_t *team) {
    run_tiles(input_range, x, V, N, H, W, C, team);
}

void threedgp_wino_output(const float *M, float *y, int64_t N, int64_t H, int64_t W, int64_t C, const team_t *team) {
    run_tiles(output_range, M, y, N, H, W, C, team);
}

void threedgp_wino_grad_output(const float *gy, float *GY, int64_t N, int64_t H, int64_t W, int64_t C,
                               const team_t *team) {
    run_tiles(grad_output_range, gy, GY, N, H, W, C, team);
}

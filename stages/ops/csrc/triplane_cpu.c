/* CPU kernels of the tri-plane sampler (stages/ops/triplane_sample.py; 3DGP ref §1.3).
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
#include <stdint.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }
static inline float hsum8(v8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

static const int AXIS_U[3] = {0, 0, 1};
static const int AXIS_V[3] = {1, 2, 2};

typedef void (*gomp_parallel_t)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_query_t)(void);

typedef struct {
    gomp_parallel_t parallel;
    omp_query_t thread_num, num_threads;
    int64_t threads;
} team_t;

typedef struct {
    void (*body)(const void *args, int64_t begin, int64_t end);
    const void *args;
    int64_t total;
    const team_t *team;
} job_t;

static void job_worker(void *arg) {
    const job_t *job = (const job_t *)arg;
    const int64_t n = job->team->num_threads(), id = job->team->thread_num();
    const int64_t begin = job->total * id / n, end = job->total * (id + 1) / n;
    if (begin < end) job->body(job->args, begin, end);
}

/* body(args, 0, total) split over the team (serially without one). */
static void run_job(void (*body)(const void *, int64_t, int64_t), const void *args, int64_t total,
                    const team_t *team) {
    if (team == 0 || team->parallel == 0 || team->threads <= 1 || total <= 1) {
        body(args, 0, total);
        return;
    }
    job_t job = {body, args, total, team};
    team->parallel(job_worker, &job, (unsigned)(team->threads < total ? team->threads : total), 0);
}

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

/* feats[i] for the flat point indices i in [i0, i1) of the B*N points. */
static void forward_range(const void *raw, int64_t i0, int64_t i1) {
    const forward_args_t *a = (const forward_args_t *)raw;
    const float *restrict planes = a->planes, *restrict points = a->points;
    float *restrict feats = a->feats;
    const int64_t N = a->N, R = a->R, nv = a->nv;
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
static void backward_range(const void *raw, int64_t t0, int64_t t1) {
    const backward_args_t *a = (const backward_args_t *)raw;
    const float *restrict planes = a->planes, *restrict points = a->points, *restrict grad_feats = a->grad_feats;
    float *restrict grad_planes = a->grad_planes, *restrict grad_part = a->grad_part;
    const int64_t N = a->N, R = a->R, nv = a->nv;
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

void threedgp_triplane_backward(const float *planes, const float *points, const float *grad_feats, float *grad_planes,
                                float *grad_part, int64_t B, int64_t N, int64_t R, int64_t nv, float inv_scale,
                                int want_planes, int want_points, const team_t *team) {
    const backward_args_t args = {planes, points, grad_feats, grad_planes, grad_part, N, R, nv, inv_scale,
                                  want_planes, want_points};
    run_job(backward_range, &args, B * 3, team);
}

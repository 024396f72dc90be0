/* What the plain-C CPU kernels share (cpu_kernels.c, winograd_cpu.c): 8-float vectors (GCC/Clang vector
 * extensions) and the work split over torch's own intra-op OpenMP team (stages/ops/_cpu_build.py: Python hands over
 * the runtime's GOMP_parallel / omp_get_thread_num / omp_get_num_threads; each thread takes its share of
 * independent work items, no locks, no second thread pool). Without a team the work runs serially. */
#ifndef THREEDGP_CPU_TEAM_H
#define THREEDGP_CPU_TEAM_H
#include <stdint.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }
typedef int32_t v8i __attribute__((vector_size(32)));
static inline v8 select8(v8i mask, v8 a, v8 b) { return (v8)(((v8i)a & mask) | ((v8i)b & ~mask)); }
static inline float hsum8(v8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

typedef void (*gomp_parallel_t)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_query_t)(void);

typedef struct {
    gomp_parallel_t parallel;
    omp_query_t thread_num, num_threads;
    int64_t threads;
} team_t;

typedef struct {
    void (*body)(const void *args, int64_t begin, int64_t end, int64_t worker);
    const void *args;
    int64_t total;
    const team_t *team;
} job_t;

static void job_worker(void *arg) {
    const job_t *job = (const job_t *)arg;
    const int64_t n = job->team->num_threads(), id = job->team->thread_num();
    const int64_t begin = job->total * id / n, end = job->total * (id + 1) / n;
    if (begin < end) job->body(job->args, begin, end, id);
}

/* body(args, begin, end, worker) over [0, total) split over the team (serially, as worker 0, without one). */
static void run_job(void (*body)(const void *, int64_t, int64_t, int64_t), const void *args, int64_t total,
                    const team_t *team) {
    if (team == 0 || team->parallel == 0 || team->threads <= 1 || total <= 1) {
        body(args, 0, total, 0);
        return;
    }
    job_t job = {body, args, total, team};
    team->parallel(job_worker, &job, (unsigned)(team->threads < total ? team->threads : total), 0);
}

#define INLINE static inline __attribute__((always_inline))

#endif

/* Physical limits of this machine, measured in the same run as the benchmarks (compare.py).
 *
 *   cc -O3 -march=native -fopenmp tools/bench/limits.c -o build-bench/limits
 *   limits stream THREADS MIB REPS   STREAM-like read: sum a MIB-MiB float array, best/median GB/s
 *   limits fma THREADS                FMA peak: independent FMA chains in registers, GFLOP/s
 *
 * Prints one JSON object. The read test touches every byte once per repetition (no write-back),
 * which is what a decode step does with its weights. The FMA test runs 16 independent chains of
 * the widest vector FMA the compiler targets (AVX-512 on this project's machines), so the
 * result is the core's FMA throughput, not its latency.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static int stream_read(int threads, size_t mib, int reps) {
  size_t n = mib * 1024 * 1024 / sizeof(float);
  float* a = NULL;
  if (posix_memalign((void**)&a, 64, n * sizeof(float)) != 0) {
    fprintf(stderr, "limits: cannot allocate %zu MiB\n", mib);
    return 1;
  }
  omp_set_num_threads(threads);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = (float)(i & 1023) * 1e-3f; /* first touch by the reading threads */
  double* gbs = malloc(sizeof(double) * (size_t)reps);
  double check = 0;
  for (int r = 0; r < reps + 1; ++r) {
    double t0 = now();
    float total = 0;
#if defined(__AVX512F__)
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; i += 64) { /* 4 x 16 lanes per iteration: independent sums */
      __m512 s0 = _mm512_load_ps(a + i), s1 = _mm512_load_ps(a + i + 16);
      __m512 s2 = _mm512_load_ps(a + i + 32), s3 = _mm512_load_ps(a + i + 48);
      total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    }
#else
#pragma omp parallel for simd schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; ++i) total += a[i];
#endif
    double dt = now() - t0;
    check += total;
    if (r > 0) gbs[r - 1] = (double)(n * sizeof(float)) / dt / 1e9; /* repetition 0 is the warmup */
  }
  qsort(gbs, (size_t)reps, sizeof(double), cmp_double);
  printf("{\"test\": \"stream_read\", \"threads\": %d, \"bytes\": %zu, \"reps\": %d, \"best_gbs\": %.3f, "
         "\"median_gbs\": %.3f, \"worst_gbs\": %.3f, \"checksum\": %.6g}\n",
         threads, n * sizeof(float), reps, gbs[reps - 1], gbs[reps / 2], gbs[0], check);
  free(gbs);
  free(a);
  return 0;
}

#define CHAINS 16
/* 16 independent FMA chains, iters steps each, as 16 named variables: each is then its own vector
 * register. (An array of accumulators inside the OpenMP region stayed on the stack, and with a
 * "memory" clobber the test measured store-to-load latency: 37 instead of ~95 GFLOP/s on a Zen 4
 * core.) The empty asm makes each chain look read and rewritten, so nothing is folded. */
#define KEEP(v) __asm__ volatile("" : "+v"(v))
#define CHAINS_BODY(T, SET1, FMA, SUM)                                                               \
  const T m = SET1(0.999999f), c = SET1(1e-7f);                                                    \
  T a0 = SET1(seed), a1 = SET1(seed + 1), a2 = SET1(seed + 2), a3 = SET1(seed + 3);                \
  T a4 = SET1(seed + 4), a5 = SET1(seed + 5), a6 = SET1(seed + 6), a7 = SET1(seed + 7);            \
  T a8 = SET1(seed + 8), a9 = SET1(seed + 9), a10 = SET1(seed + 10), a11 = SET1(seed + 11);        \
  T a12 = SET1(seed + 12), a13 = SET1(seed + 13), a14 = SET1(seed + 14), a15 = SET1(seed + 15);    \
  for (long i = 0; i < iters; ++i) {                                                               \
    a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);                \
    a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);                \
    a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);            \
    a12 = FMA(a12, m, c); a13 = FMA(a13, m, c); a14 = FMA(a14, m, c); a15 = FMA(a15, m, c);        \
    KEEP(a0); KEEP(a1); KEEP(a2); KEEP(a3); KEEP(a4); KEEP(a5); KEEP(a6); KEEP(a7);                \
    KEEP(a8); KEEP(a9); KEEP(a10); KEEP(a11); KEEP(a12); KEEP(a13); KEEP(a14); KEEP(a15);          \
  }                                                                                                \
  return SUM(a0) + SUM(a1) + SUM(a2) + SUM(a3) + SUM(a4) + SUM(a5) + SUM(a6) + SUM(a7) + SUM(a8) + \
         SUM(a9) + SUM(a10) + SUM(a11) + SUM(a12) + SUM(a13) + SUM(a14) + SUM(a15);

#if defined(__AVX512F__)
enum { LANES = 16 };
static float chains(long iters, float seed) { CHAINS_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps) }
#elif defined(__AVX2__) && defined(__FMA__)
enum { LANES = 8 };
static float sum8(__m256 v) {
  float t[8];
  _mm256_storeu_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
static float chains(long iters, float seed) { CHAINS_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, sum8) }
#else
enum { LANES = 1 };
static float set1(float x) { return x; }
static float fma1(float a, float m, float c) { return a * m + c; }
static float sum1(float x) { return x; }
static float chains(long iters, float seed) { CHAINS_BODY(float, set1, fma1, sum1) }
#endif

static int fma_peak(int threads) {
  const long iters = 20 * 1000 * 1000;
  double best = 0;
  const int lanes = LANES;
  for (int r = 0; r < 3; ++r) {
    double t0 = 0, dt = 0;
    float sink = 0;
    omp_set_num_threads(threads);
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp barrier
#pragma omp master
      t0 = now();
      sink += chains(iters, (float)omp_get_thread_num());
#pragma omp barrier
#pragma omp master
      dt = now() - t0;
    }
    double gflops = 2.0 * lanes * CHAINS * (double)iters * threads / dt / 1e9;
    if (gflops > best) best = gflops;
    if (sink == 12345.0f) printf("#");
  }
  printf("{\"test\": \"fma_peak\", \"threads\": %d, \"vector_lanes_fp32\": %d, \"chains\": %d, \"gflops\": %.2f}\n",
         threads, lanes, CHAINS, best);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && strcmp(argv[1], "stream") == 0)
    return stream_read(atoi(argv[2]), (size_t)atol(argv[3]), atoi(argv[4]));
  if (argc >= 3 && strcmp(argv[1], "fma") == 0) return fma_peak(atoi(argv[2]));
  fprintf(stderr, "usage: limits stream THREADS MIB REPS | limits fma THREADS\n");
  return 2;
}

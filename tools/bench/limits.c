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
static int fma_peak(int threads) {
  const long iters = 20 * 1000 * 1000;
  double best = 0;
  int lanes = 0;
  for (int r = 0; r < 3; ++r) {
    double t0 = 0, dt = 0;
    float sink = 0;
    omp_set_num_threads(threads);
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp barrier
#pragma omp master
      t0 = now();
#if defined(__AVX512F__)
      __m512 acc[CHAINS];
      const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
      for (int k = 0; k < CHAINS; ++k) acc[k] = _mm512_set1_ps((float)(k + omp_get_thread_num()));
      for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; ++k) acc[k] = _mm512_fmadd_ps(acc[k], m, c);
        __asm__ volatile("" ::: "memory");
      }
      for (int k = 0; k < CHAINS; ++k) sink += _mm512_reduce_add_ps(acc[k]);
#pragma omp master
      lanes = 16;
#elif defined(__AVX2__) && defined(__FMA__)
      __m256 acc[CHAINS];
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (int k = 0; k < CHAINS; ++k) acc[k] = _mm256_set1_ps((float)(k + omp_get_thread_num()));
      for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; ++k) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
        __asm__ volatile("" ::: "memory");
      }
      float tmp[8];
      for (int k = 0; k < CHAINS; ++k) {
        _mm256_storeu_ps(tmp, acc[k]);
        for (int j = 0; j < 8; ++j) sink += tmp[j];
      }
#pragma omp master
      lanes = 8;
#else
      float acc[CHAINS];
      for (int k = 0; k < CHAINS; ++k) acc[k] = (float)k;
      for (long i = 0; i < iters; ++i)
        for (int k = 0; k < CHAINS; ++k) acc[k] = acc[k] * 0.999999f + 1e-7f;
      for (int k = 0; k < CHAINS; ++k) sink += acc[k];
#pragma omp master
      lanes = 1;
#endif
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

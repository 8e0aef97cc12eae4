/* Physical limits of this machine, measured in the same run as the benchmarks (compare.py).
 *
 *   cc -O3 -march=native -fopenmp tools/bench/limits.c -o build-bench/limits
 *   limits levels THREADS REPS       read bandwidth of L2, the last-level cache and DRAM (JSON lines)
 *   limits stream THREADS MIB REPS [STREAMS]  read bandwidth of one MIB-MiB buffer (1 or 8 streams per thread)
 *   limits fma THREADS                FMA peak: independent FMA chains in registers, GFLOP/s
 *
 * Prints JSON. The read tests touch every byte of the buffer once per pass (no write-back),
 * which is what a decode step does with its weights; each thread sums its own slice with 8
 * independent vector accumulators (no horizontal sum in the loop: an earlier version reduced
 * every 256 bytes and measured less than the 100 M decode itself streamed), best of REPS.
 * Cache sizes come from /sys/devices/system/cpu/cpu0/cache/index<i>/{level,type,size}.
 * The FMA test runs 16 independent chains of the widest vector FMA the compiler targets
 * (AVX-512 on this project's machines), so the result is the core's FMA throughput, not its
 * latency.
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

/* Sums this thread's slice [lo, hi) `passes` times with 8 independent vector accumulators
 * (8 x 64 bytes per iteration, no horizontal sum inside the loop, so the loads are the only
 * limit). Returns the sum so that nothing is optimized away. */
static float read_slice(const float* a, size_t lo, size_t hi, long passes) {
#if defined(__AVX512F__)
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (long p = 0; p < passes; ++p) {
    for (size_t i = lo; i < hi; i += 128) {
      s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
      s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
      s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
      s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
      s4 = _mm512_add_ps(s4, _mm512_load_ps(a + i + 64));
      s5 = _mm512_add_ps(s5, _mm512_load_ps(a + i + 80));
      s6 = _mm512_add_ps(s6, _mm512_load_ps(a + i + 96));
      s7 = _mm512_add_ps(s7, _mm512_load_ps(a + i + 112));
    }
    __asm__ volatile("" : "+v"(s0), "+v"(s1), "+v"(s2), "+v"(s3), "+v"(s4), "+v"(s5), "+v"(s6), "+v"(s7));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)),
                                            _mm512_add_ps(_mm512_add_ps(s4, s5), _mm512_add_ps(s6, s7))));
#elif defined(__AVX2__)
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (long p = 0; p < passes; ++p) {
    for (size_t i = lo; i < hi; i += 64) {
      s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
      s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
      s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
      s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
      s4 = _mm256_add_ps(s4, _mm256_load_ps(a + i + 32));
      s5 = _mm256_add_ps(s5, _mm256_load_ps(a + i + 40));
      s6 = _mm256_add_ps(s6, _mm256_load_ps(a + i + 48));
      s7 = _mm256_add_ps(s7, _mm256_load_ps(a + i + 56));
    }
    __asm__ volatile("" : "+x"(s0), "+x"(s1), "+x"(s2), "+x"(s3), "+x"(s4), "+x"(s5), "+x"(s6), "+x"(s7));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                                    _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7))));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#else
  float s[8] = {0};
  for (long p = 0; p < passes; ++p)
    for (size_t i = lo; i < hi; i += 8)
      for (int k = 0; k < 8; ++k) s[k] += a[i + k];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
#endif
}

/* The same sum read as 8 concurrent streams: the slice is cut into 8 equal parts and every
 * iteration loads one 64-byte line from each, as a matrix-vector product reads 8 weight rows at a
 * time. A single core keeps more lines in flight this way (one hardware prefetch stream per part),
 * and on the family-26 EPYC the 100 M decode streamed 4% more than the single-stream read: a bound
 * must take the better pattern. */
static float read_slice_8streams(const float* a, size_t lo, size_t hi, long passes) {
  const size_t part = (hi - lo) / 8 / 16 * 16; /* floats per part, whole 64-byte lines */
  float rest = 0;
  for (size_t i = lo + 8 * part; i < hi; ++i) rest += a[i]; /* the tail, once */
#if defined(__AVX512F__)
  const float* p0 = a + lo;
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (long p = 0; p < passes; ++p) {
    for (size_t i = 0; i < part; i += 16) {
      s0 = _mm512_add_ps(s0, _mm512_load_ps(p0 + i));
      s1 = _mm512_add_ps(s1, _mm512_load_ps(p0 + part + i));
      s2 = _mm512_add_ps(s2, _mm512_load_ps(p0 + 2 * part + i));
      s3 = _mm512_add_ps(s3, _mm512_load_ps(p0 + 3 * part + i));
      s4 = _mm512_add_ps(s4, _mm512_load_ps(p0 + 4 * part + i));
      s5 = _mm512_add_ps(s5, _mm512_load_ps(p0 + 5 * part + i));
      s6 = _mm512_add_ps(s6, _mm512_load_ps(p0 + 6 * part + i));
      s7 = _mm512_add_ps(s7, _mm512_load_ps(p0 + 7 * part + i));
    }
    __asm__ volatile("" : "+v"(s0), "+v"(s1), "+v"(s2), "+v"(s3), "+v"(s4), "+v"(s5), "+v"(s6), "+v"(s7));
  }
  return rest + _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)),
                                                   _mm512_add_ps(_mm512_add_ps(s4, s5), _mm512_add_ps(s6, s7))));
#else
  (void)part;
  return rest + read_slice(a, lo, lo + 8 * part, passes);
#endif
}

/* Read bandwidth over a buffer of `bytes` (split evenly among the threads, each reading its own
 * slice, first touched by that thread): every repetition reads the whole buffer `passes` times,
 * passes chosen so that a repetition reads >= 256 MiB. Best of `reps` (after 1 untimed). */
static int read_bw(const char* level, int threads, size_t bytes, int reps, int streams) {
  const size_t unit = 128 * sizeof(float) * (size_t)threads; /* whole 512-byte blocks per thread */
  bytes = bytes / unit * unit;
  if (bytes == 0) bytes = unit;
  size_t n = bytes / sizeof(float), per = n / (size_t)threads;
  long passes = (long)((256.0 * 1024 * 1024) / (double)bytes);
  if (passes < 1) passes = 1;
  float* a = NULL;
  if (posix_memalign((void**)&a, 64, bytes) != 0) {
    fprintf(stderr, "limits: cannot allocate %zu bytes\n", bytes);
    return 1;
  }
  omp_set_num_threads(threads);
  double* gbs = malloc(sizeof(double) * (size_t)reps);
  double check = 0;
#pragma omp parallel
  {
    int t = omp_get_thread_num();
    for (size_t i = (size_t)t * per; i < (size_t)(t + 1) * per; ++i) a[i] = (float)(i & 1023) * 1e-3f;
  }
  for (int r = 0; r < reps + 1; ++r) {
    double t0 = 0, dt = 0;
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      int t = omp_get_thread_num();
#pragma omp barrier
#pragma omp master
      t0 = now();
#pragma omp barrier
      const size_t lo = (size_t)t * per, hi = (size_t)(t + 1) * per;
      total += streams == 8 ? read_slice_8streams(a, lo, hi, passes) : read_slice(a, lo, hi, passes);
#pragma omp barrier
#pragma omp master
      dt = now() - t0;
    }
    check += total;
    if (r > 0) gbs[r - 1] = (double)bytes * (double)passes / dt / 1e9; /* repetition 0 is the warmup */
  }
  qsort(gbs, (size_t)reps, sizeof(double), cmp_double);
  printf("{\"test\": \"read\", \"level\": \"%s\", \"threads\": %d, \"streams\": %d, \"bytes\": %zu, \"passes\": %ld, \"reps\": %d, "
         "\"best_gbs\": %.3f, \"median_gbs\": %.3f, \"worst_gbs\": %.3f, \"checksum\": %.6g}\n",
         level, threads, streams, bytes, passes, reps, gbs[reps - 1], gbs[reps / 2], gbs[0], check);
  free(gbs);
  free(a);
  return 0;
}

/* Size in bytes of cpu0's unified/data cache of this level (sysfs), 0 when unknown. */
static size_t cache_size(int level) {
  for (int i = 0; i < 8; ++i) {
    char path[128], buf[64];
    int lv = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    FILE* f = fopen(path, "r");
    if (!f) break;
    if (fscanf(f, "%d", &lv) != 1) lv = 0;
    fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    if (lv != level || strncmp(buf, "Instruction", 11) == 0) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    f = fopen(path, "r");
    if (!f) continue;
    size_t v = 0;
    char unit = 0;
    if (fscanf(f, "%zu%c", &v, &unit) < 1) v = 0;
    fclose(f);
    return unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : unit == 'G' ? v << 30 : v;
  }
  return 0;
}

/* The read bandwidth of each level for THREADS threads: L2 (each thread reads half its core's
 * L2), the last-level cache (buffers of 3 x the threads' L2, LLC/4 and LLC/2, shared, split
 * among the threads: a bound must hold for every working set in that range, and the smaller
 * ones can read faster) and DRAM (a buffer of max(1 GiB, 16 x LLC)). Prints one JSON line per
 * measurement (each level with 1 and with 8 streams per thread), first the cache sizes; a reader
 * keeps the best line of each level. */
static int levels(int threads, int reps) {
  /* A repetition costs at most ~30 ms (256 MiB or one DRAM buffer): take the best of many, as a
   * shared VM's neighbours make single reads swing by 10-20% and a bound must not read low. */
  if (reps < 20) reps = 20;
  size_t l2 = cache_size(2), llc = cache_size(3);
  if (llc == 0) llc = l2;
  printf("{\"test\": \"caches\", \"l1d\": %zu, \"l2\": %zu, \"llc\": %zu, \"llc_level\": %d}\n", cache_size(1), l2,
         llc, cache_size(3) ? 3 : 2);
  fflush(stdout);
  int rc = 0;
  static const int patterns[2] = {1, 8}; /* one stream per thread, then 8 (a reader keeps the better) */
  for (int k = 0; k < 2 && l2; ++k) rc |= read_bw("l2", threads, l2 / 2 * (size_t)threads, reps, patterns[k]);
  fflush(stdout);
  if (cache_size(3)) {
    size_t sizes[3] = {3 * l2 * (size_t)threads, llc / 4, llc / 2};
    for (int i = 0; i < 3; ++i) {
      if (sizes[i] > llc / 2 || (i > 0 && sizes[i] == sizes[i - 1])) continue;
      for (int k = 0; k < 2; ++k) rc |= read_bw("llc", threads, sizes[i], reps, patterns[k]);
      fflush(stdout);
    }
  }
  size_t dram = (size_t)1 << 30;
  if (dram < 16 * llc) dram = 16 * llc;
  for (int k = 0; k < 2; ++k) rc |= read_bw("dram", threads, dram, reps, patterns[k]);
  return rc;
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
    return read_bw("dram", atoi(argv[2]), (size_t)atol(argv[3]) << 20, atoi(argv[4]), argc >= 6 ? atoi(argv[5]) : 1);
  if (argc >= 4 && strcmp(argv[1], "levels") == 0) return levels(atoi(argv[2]), atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "fma") == 0) return fma_peak(atoi(argv[2]));
  fprintf(stderr, "usage: limits levels THREADS REPS | limits stream THREADS MIB REPS | limits fma THREADS\n");
  return 2;
}

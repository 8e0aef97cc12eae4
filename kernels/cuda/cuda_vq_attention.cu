// vq_attention: windowed + codebook attention, optionally continued from a decoding state
// (longvq-model.md §3, §4), in O(n·(W + S)·(e + h)) work like the CPU kernel, never O(n²).
//
// Launch: grid (query blocks, batch rows), 128 threads per block. A block answers L consecutive
// queries in order. It reads a codebook memory (U [S,h], N [S]): the state's cache (or nothing)
// until a key must be added, then a private copy in device scratch:
//  * causal: keys older than the query's window (position < P − W), added in position order
//    as queries advance; a block first catches up with the keys before its own queries, so the
//    result does not depend on how queries are split (a decode step never copies the cache);
//  * bidirectional: a forward pass with the prefix memory (keys j < i − W) leaves each query's
//    partial softmax (max, den, unnormalized output), then a backward pass with the suffix
//    memory (keys j > i + W, built from the end) merges its own partial under one max.
// Per query, threads split the codewords (qc[s] = Q·C_s/√e), the window keys (scores with the
// relative bias) and then the h output columns; block reductions give the one running max over
// window scores and qc[s] + log N_s, and the denominator. Memory adds are done by the thread
// owning each column, in position order, so no atomics are needed and sums are deterministic.
// Shared memory (dynamic): value pointers and scores of the window keys (W+1 causal, 2W+1
// bidirectional), qc[S], code weights[S], 32 floats for reductions. Above the 48 KiB every
// device grants, the kernels opt in (cudaFuncSetAttribute, once per process, from cuda_prepare:
// outside any graph capture) to the device's per-block maximum
// (cudaDevAttrMaxSharedMemoryPerBlockOptin: 227 KiB on sm_80/sm_90), so e.g. a bidirectional
// S = 4096, W = 1024 model (56 KiB) runs. Device scratch per block: the private memory and
// (bidirectional) each query's partial max and denominator.
//
// A stateful call is followed by vq_push_kernel (one block per row) that updates the state as
// n decode steps would (push_key): ring slot = position mod W; the key leaving the ring joins
// (U, N). Codes, ring codes and positions are range-checked on the device; a bad one is skipped
// and reported through the error flags.
#include <cstdio>
#include <mutex>

#include "kernels/cuda/cuda_common.cuh"

namespace longvq::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMinQueriesPerBlock = 16;
constexpr int64_t kMaxBlocksPerRow = 64;  // bounds the scratch: one memory per block
constexpr size_t kDefaultSharedBytes = 48 * 1024;  // the per-block limit without an opt-in

struct AttnArgs {
  const float* Q;
  const float* K;
  const float* V;
  const int32_t* codes;
  const float* C;  // codebook [S, e]
  const float* T;  // rel_bias
  const int32_t* lengths;
  int32_t* ring_codes;
  float* ring_values;
  float* ring_keys;
  float* cache_u;
  int32_t* cache_n;
  const int64_t* pos;
  const int32_t* rows;  // the state row of batch row b (null: row b); state tensors are [R, ...]
  float* O;
  float* mem_u;    // scratch: [B · blocks_per_row][S, h]
  int32_t* mem_n;  // scratch: [B · blocks_per_row][S]
  float* part;     // scratch: [B · blocks_per_row][2, L] (bidirectional partial max, den)
  uint32_t* error;
  int64_t B, n, e, h, S, W, L, blocks_per_row;
  bool qwk;
  float scale;
};

int64_t queries_per_block(int64_t n) {
  const int64_t even = (n + kMaxBlocksPerRow - 1) / kMaxBlocksPerRow;
  return even > kMinQueriesPerBlock ? even : kMinQueriesPerBlock;
}

int64_t window_keys(int64_t W, bool bidir) { return bidir ? 2 * W + 1 : W + 1; }

size_t shared_bytes(int64_t S, int64_t W, bool bidir) {
  const int64_t nw = window_keys(W, bidir);
  return static_cast<size_t>(nw) * sizeof(const float*) + static_cast<size_t>(2 * S + nw + 32) * sizeof(float);
}

struct Shared {
  const float** wv;  // [nw] window key values (null: no key)
  float* qc;         // [S]
  float* wc;         // [S] code weights e^{qc−m} (0 where N_s = 0)
  float* ws;         // [nw] window scores, then weights
  float* red;        // [32]
};

__device__ Shared carve_shared(int64_t S, int64_t nw) {
  extern __shared__ __align__(16) unsigned char smem[];
  Shared sh;
  sh.wv = reinterpret_cast<const float**>(smem);
  sh.qc = reinterpret_cast<float*>(smem + nw * sizeof(const float*));
  sh.wc = sh.qc + S;
  sh.ws = sh.wc + S;
  sh.red = sh.ws + nw;
  return sh;
}

__device__ float dot(const float* a, const float* b, int64_t e) {
  float s = 0.0f;
  for (int64_t i = 0; i < e; ++i) s = fmaf(a[i], b[i], s);
  return s;
}

// The codebook memory a block reads: `u`, `n` point at the state's cache (or are null: empty)
// until the first key is added, then at the block's own copy in scratch. Every thread owns the
// columns j ≡ threadIdx.x (mod blockDim.x) of U (it copies, adds and reads only those) and
// thread 0 alone writes N, so adds need no atomics; all threads make the same calls, so
// `owned` is the same in every thread, and callers put a barrier between adds and reads of N.
struct Memory {
  const float* u = nullptr;
  const int32_t* n = nullptr;
  float* own_u;
  int32_t* own_n;
  bool owned = false;
};

// The state row batch row b continues.
__device__ inline int64_t state_row(const AttnArgs& a, int64_t b) { return a.rows ? a.rows[b] : b; }

__device__ Memory block_memory(const AttnArgs& a, int64_t b, bool from_cache) {
  const int64_t idx = b * a.blocks_per_row + blockIdx.x;
  Memory m;
  m.own_u = a.mem_u + idx * a.S * a.h;
  m.own_n = a.mem_n + idx * a.S;
  if (from_cache) {
    m.u = a.cache_u + state_row(a, b) * a.S * a.h;
    m.n = a.cache_n + state_row(a, b) * a.S;
  }
  return m;
}

// U[code] += v, N[code] += 1, in this thread's columns (copying the base memory first).
__device__ void memory_add(const AttnArgs& a, Memory& mem, int32_t code, const float* v) {
  if (!mem.owned) {
    for (int64_t s = 0; s < a.S; ++s)
      for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) mem.own_u[s * a.h + j] = mem.u ? mem.u[s * a.h + j] : 0.0f;
    if (threadIdx.x == 0)
      for (int64_t s = 0; s < a.S; ++s) mem.own_n[s] = mem.n ? mem.n[s] : 0;
    mem.u = mem.own_u;
    mem.n = mem.own_n;
    mem.owned = true;
  }
  for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) mem.own_u[code * a.h + j] += v[j];
  if (threadIdx.x == 0) mem.own_n[code] += 1;
}

__device__ bool code_ok(const AttnArgs& a, int32_t code) {
  if (code >= 0 && code < a.S) return true;
  raise_error(a.error, kCudaErrCodeRange);
  return false;
}

// The causal key at position p of row b: the chunk (p ≥ p0) or the ring (p0 − W ≤ p < p0).
__device__ bool key_at(const AttnArgs& a, int64_t b, int64_t p0, int64_t len, int64_t p, int32_t& code,
                       const float*& k, const float*& v) {
  if (p >= p0) {
    const int64_t j = p - p0;
    if (j >= len) return false;  // pad: no key
    code = a.codes[b * a.n + j];
    k = a.K + (b * a.n + j) * a.e;
    v = a.V + (b * a.n + j) * a.h;
    return code_ok(a, code);
  }
  if (!a.ring_codes || p < 0 || p < p0 - a.W) return false;
  const int64_t slot = p % a.W, sb = state_row(a, b);
  code = a.ring_codes[sb * a.W + slot];
  if (code == -1) return false;  // empty slot
  if (code < -1 || code >= a.S) {
    raise_error(a.error, kCudaErrRingCode);
    return false;
  }
  k = a.ring_keys ? a.ring_keys + (sb * a.W + slot) * a.e : nullptr;
  v = a.ring_values + (sb * a.W + slot) * a.h;
  return true;
}

// qc[s] = Q·C_s/√e for every s (threads over s). The caller puts a barrier before reading.
__device__ void code_scores(const AttnArgs& a, const Shared& sh, const float* q) {
  for (int64_t s = threadIdx.x; s < a.S; s += blockDim.x) sh.qc[s] = dot(q, a.C + s * a.e, a.e) * a.scale;
}

// The max over qc[s] + log N_s (N_s > 0) of this thread's codes, folded into m.
__device__ float memory_max_part(const AttnArgs& a, const Shared& sh, const Memory& mem, float m) {
  if (!mem.n) return m;
  for (int64_t s = threadIdx.x; s < a.S; s += blockDim.x)
    if (mem.n[s] > 0) m = fmaxf(m, sh.qc[s] + logf(static_cast<float>(mem.n[s])));
  return m;
}

// wc[s] = e^{qc[s]−m} where N_s > 0; returns this thread's part of Σ_s wc[s]·N_s.
__device__ float memory_weights(const AttnArgs& a, const Shared& sh, const Memory& mem, float m) {
  float den = 0.0f;
  for (int64_t s = threadIdx.x; s < a.S; s += blockDim.x) {
    const int32_t cnt = mem.n ? mem.n[s] : 0;
    sh.wc[s] = cnt > 0 ? expf(sh.qc[s] - m) : 0.0f;
    den += sh.wc[s] * static_cast<float>(cnt);
  }
  return den;
}

// Σ_s wc[s]·U_s[j] for column j.
__device__ float memory_column(const AttnArgs& a, const Shared& sh, const Memory& mem, int64_t j) {
  float acc = 0.0f;
  if (!mem.u) return acc;
  for (int64_t s = 0; s < a.S; ++s)
    if (sh.wc[s] != 0.0f) acc = fmaf(sh.wc[s], mem.u[s * a.h + j], acc);
  return acc;
}

// Window scores → weights e^{s−m} (0 where there is no key); returns this thread's part of Σ.
__device__ float window_weights(const Shared& sh, int64_t nw, float m) {
  float den = 0.0f;
  for (int64_t w = threadIdx.x; w < nw; w += blockDim.x) {
    sh.ws[w] = sh.wv[w] ? expf(sh.ws[w] - m) : 0.0f;
    den += sh.ws[w];
  }
  return den;
}

__device__ float window_column(const Shared& sh, int64_t nw, int64_t j) {
  float acc = 0.0f;
  for (int64_t w = 0; w < nw; ++w)
    if (sh.wv[w]) acc = fmaf(sh.ws[w], sh.wv[w][j], acc);
  return acc;
}

// --- causal (stateful or not) ------------------------------------------------------------------
__global__ void causal_kernel(AttnArgs a) {
  const int64_t b = blockIdx.y;
  const int64_t t0 = blockIdx.x * a.L, t1 = min64(a.n, t0 + a.L);
  const int64_t W = a.W, nw = W + 1;
  const int64_t p0 = a.pos ? a.pos[state_row(a, b)] : 0;
  if (p0 < 0) {
    if (threadIdx.x == 0) raise_error(a.error, kCudaErrPosition);
    return;
  }
  const int64_t len = valid_length(a.lengths, b, a.n);
  const Shared sh = carve_shared(a.S, nw);
  Memory mem = block_memory(a, b, a.cache_u != nullptr);

  int64_t next = p0 - W;  // oldest position not yet in the memory (older ones are in the cache)
  for (int64_t i = t0; i < t1; ++i) {
    const int64_t P = p0 + i;
    for (; next < P - W; ++next) {  // keys that left this query's window join (U, N)
      int32_t code;
      const float *k, *v;
      if (key_at(a, b, p0, len, next, code, k, v)) memory_add(a, mem, code, v);
    }
    __syncthreads();
    const float* q = a.Q + (b * a.n + i) * a.e;
    code_scores(a, sh, q);
    for (int64_t w = threadIdx.x; w < nw; w += blockDim.x) {  // window key at distance w = i − j
      int32_t code;
      const float *k, *v;
      const bool ok = P - w >= 0 && key_at(a, b, p0, len, P - w, code, k, v);
      // key_j = K̂_j = C[c_j] (quantized window keys) or the raw K_j
      sh.ws[w] = ok ? dot(q, a.qwk ? a.C + code * a.e : k, a.e) * a.scale + a.T[w] : 0.0f;  // + T[i − j]
      sh.wv[w] = ok ? v : nullptr;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int64_t w = threadIdx.x; w < nw; w += blockDim.x)
      if (sh.wv[w]) m = fmaxf(m, sh.ws[w]);
    m = block_max(memory_max_part(a, sh, mem, m), sh.red);  // one max over window and codebook
    float* o = a.O + (b * a.n + i) * a.h;
    if (m == -INFINITY) {  // no key at all: zero output
      for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) o[j] = 0.0f;
      continue;
    }
    const float den = block_sum(window_weights(sh, nw, m) + memory_weights(a, sh, mem, m), sh.red);
    for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x)
      o[j] = (window_column(sh, nw, j) + memory_column(a, sh, mem, j)) / den;  // O = num / den
    __syncthreads();  // shared arrays are rewritten by the next query
  }
}

// --- bidirectional -----------------------------------------------------------------------------
__global__ void bidir_kernel(AttnArgs a) {
  const int64_t b = blockIdx.y;
  const int64_t t0 = blockIdx.x * a.L, t1 = min64(a.n, t0 + a.L);
  const int64_t W = a.W, nw = 2 * W + 1;
  const int64_t len = valid_length(a.lengths, b, a.n);
  const Shared sh = carve_shared(a.S, nw);
  Memory mem = block_memory(a, b, false);
  float* part_m = a.part + (b * a.blocks_per_row + blockIdx.x) * 2 * a.L;  // written and read by thread 0
  float* part_den = part_m + a.L;

  // Forward: window |i − j| ≤ W and the prefix memory (valid keys j < i − W).
  int64_t next = 0;
  for (int64_t i = t0; i < t1; ++i) {
    for (; next < min64(i - W, len); ++next) {
      const int32_t code = a.codes[b * a.n + next];
      if (code_ok(a, code)) memory_add(a, mem, code, a.V + (b * a.n + next) * a.h);
    }
    __syncthreads();
    const float* q = a.Q + (b * a.n + i) * a.e;
    code_scores(a, sh, q);
    for (int64_t w = threadIdx.x; w < nw; w += blockDim.x) {  // key j = i − W + w
      const int64_t j = i - W + w;
      const int32_t code = j >= 0 && j < len ? a.codes[b * a.n + j] : -1;
      const bool ok = j >= 0 && j < len && code_ok(a, code);
      sh.ws[w] = ok ? dot(q, a.qwk ? a.C + code * a.e : a.K + (b * a.n + j) * a.e, a.e) * a.scale + a.T[w]
                    : 0.0f;  // + T[W + j − i]
      sh.wv[w] = ok ? a.V + (b * a.n + j) * a.h : nullptr;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int64_t w = threadIdx.x; w < nw; w += blockDim.x)
      if (sh.wv[w]) m = fmaxf(m, sh.ws[w]);
    m = block_max(memory_max_part(a, sh, mem, m), sh.red);
    float* o = a.O + (b * a.n + i) * a.h;
    float den = 0.0f;
    if (m != -INFINITY) den = block_sum(window_weights(sh, nw, m) + memory_weights(a, sh, mem, m), sh.red);
    for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x)  // unnormalized until the backward pass
      o[j] = m == -INFINITY ? 0.0f : window_column(sh, nw, j) + memory_column(a, sh, mem, j);
    if (threadIdx.x == 0) {
      part_m[i - t0] = m;
      part_den[i - t0] = den;
    }
    __syncthreads();
  }

  // Backward: the suffix memory (valid keys j > i + W), merged under one max.
  mem = block_memory(a, b, false);
  int64_t prev = len - 1;  // keys j > prev are in the memory
  for (int64_t i = t1 - 1; i >= t0; --i) {
    for (; prev > max64(i + W, -1); --prev) {
      const int32_t code = a.codes[b * a.n + prev];
      if (code_ok(a, code)) memory_add(a, mem, code, a.V + (b * a.n + prev) * a.h);
    }
    __syncthreads();
    code_scores(a, sh, a.Q + (b * a.n + i) * a.e);
    __syncthreads();
    const float mb = block_max(memory_max_part(a, sh, mem, -INFINITY), sh.red);
    if (threadIdx.x == 0) {  // broadcast thread 0's partial through shared memory
      sh.red[0] = part_m[i - t0];
      sh.red[1] = part_den[i - t0];
    }
    __syncthreads();
    float mf = sh.red[0], den = sh.red[1];
    __syncthreads();  // sh.red is the reductions' scratch
    float* o = a.O + (b * a.n + i) * a.h;
    if (mb != -INFINITY) {
      const float db = block_sum(memory_weights(a, sh, mem, mb), sh.red);
      const float m = fmaxf(mf, mb);
      const float sf = mf == -INFINITY ? 0.0f : expf(mf - m), sb = expf(mb - m);
      for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) o[j] = o[j] * sf + memory_column(a, sh, mem, j) * sb;
      den = den * sf + db * sb;
      mf = m;
    }
    if (mf != -INFINITY)
      for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) o[j] /= den;  // O = num / den
    __syncthreads();
  }
}

// --- state update after a stateful chunk ---------------------------------------------------------
// One block per row; threads split the h value columns (and e key columns). Tokens in order.
__global__ void vq_push_kernel(AttnArgs a) {
  const int64_t b = blockIdx.x, sb = state_row(a, b);
  const int64_t p0 = a.pos[sb];
  if (p0 < 0) return;  // reported by causal_kernel
  const int64_t W = a.W;
  for (int64_t i = 0; i < a.n; ++i) {
    const int64_t P = p0 + i;
    const int32_t code = a.codes[b * a.n + i];
    if (code < 0 || code >= a.S) {
      if (threadIdx.x == 0) raise_error(a.error, kCudaErrCodeRange);
      continue;
    }
    const float* v = a.V + (b * a.n + i) * a.h;
    auto add = [&](int32_t c, const float* val) {  // cache_u[c] += val, cache_n[c] += 1
      for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) a.cache_u[(sb * a.S + c) * a.h + j] += val[j];
      if (threadIdx.x == 0) a.cache_n[sb * a.S + c] += 1;
    };
    if (W == 0) {  // window 0: straight into (U, N)
      add(code, v);
      continue;
    }
    const int64_t slot = P % W;
    const int32_t old = a.ring_codes[sb * W + slot];
    __syncthreads();  // everyone has read `old` before thread 0 overwrites it
    float* rv = a.ring_values + (sb * W + slot) * a.h;
    if (P >= W && old >= 0 && old < a.S) add(old, rv);  // position P − W leaves the window
    for (int64_t j = threadIdx.x; j < a.h; j += blockDim.x) rv[j] = v[j];  // after this thread's add of rv[j]
    if (a.ring_keys)
      for (int64_t j = threadIdx.x; j < a.e; j += blockDim.x)
        a.ring_keys[(sb * W + slot) * a.e + j] = a.K[(b * a.n + i) * a.e + j];
    if (threadIdx.x == 0) a.ring_codes[sb * W + slot] = code;
    __syncthreads();
  }
}

AttnArgs make_args(const OpCall& c, const CudaContext& ctx) {
  const OpParams& p = c.params;
  const bool ring = p.stateful && p.window > 0;
  using I = VqAttentionIn;
  AttnArgs a{};
  a.Q = c.in_as<const float>(I::q);
  a.K = c.in_as<const float>(I::k);
  a.V = c.in_as<const float>(I::v);
  a.codes = c.in_as<const int32_t>(I::codes);
  a.C = c.in_as<const float>(I::codebook);
  a.T = c.in_as<const float>(I::rel_bias);
  a.lengths = p.has_lengths ? c.in_as<const int32_t>(I::lengths) : nullptr;
  a.ring_codes = ring ? c.in_as<int32_t>(I::ring_codes) : nullptr;
  a.ring_values = ring ? c.in_as<float>(I::ring_values) : nullptr;
  a.ring_keys = ring && !p.quantize_window_keys ? c.in_as<float>(I::ring_keys) : nullptr;
  a.cache_u = p.stateful ? c.in_as<float>(I::cache_u) : nullptr;
  a.cache_n = p.stateful ? c.in_as<int32_t>(I::cache_n) : nullptr;
  a.pos = p.stateful ? c.in_as<const int64_t>(I::pos) : nullptr;
  a.rows = c.in_as<const int32_t>(I::state_rows);
  a.O = c.out_as<float>(VqAttentionOut::o);
  a.error = ctx.error_flags;
  a.B = c.in(I::q).shape[0];
  a.n = c.in(I::q).shape[1];
  a.e = c.in(I::q).shape[2];
  a.h = c.in(I::v).shape[2];
  a.S = c.in(I::codebook).shape[0];
  a.W = p.window;
  a.L = queries_per_block(a.n);
  a.blocks_per_row = (a.n + a.L - 1) / a.L;
  a.qwk = p.quantize_window_keys;
  a.scale = 1.0f / sqrtf(static_cast<float>(a.e));
  const int64_t blocks = a.B * a.blocks_per_row;  // the carve of scratch_bytes
  a.mem_u = static_cast<float*>(ctx.scratch);
  a.part = a.mem_u + blocks * a.S * a.h;
  a.mem_n = reinterpret_cast<int32_t*>(a.part + blocks * 2 * a.L);
  return a;
}

// The dynamic shared memory a block may have on this process's device: the opt-in maximum
// (queried once; the default 48 KiB if the query fails).
size_t max_shared_bytes() {
  static const size_t bytes = [] {
    int device = 0, optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
        static_cast<size_t>(optin) < kDefaultSharedBytes) {
      cudaGetLastError();  // leave no error behind for the next check
      return kDefaultSharedBytes;
    }
    return static_cast<size_t>(optin);
  }();
  return bytes;
}

// Lets both kernels launch with up to max_shared_bytes() (they have no static shared memory).
// Once per process, outside any capture (cuda_prepare).
void opt_in_shared_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    const size_t bytes = max_shared_bytes();
    if (bytes <= kDefaultSharedBytes) return;
    check(cudaFuncSetAttribute(causal_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "cudaFuncSetAttribute (vq_attention causal_kernel shared memory)");
    check(cudaFuncSetAttribute(bidir_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "cudaFuncSetAttribute (vq_attention bidir_kernel shared memory)");
  });
}

size_t scratch_bytes(const OpCall& c) {
  using I = VqAttentionIn;
  const int64_t B = c.in(I::q).shape[0], n = c.in(I::q).shape[1];
  const int64_t h = c.in(I::v).shape[2], S = c.in(I::codebook).shape[0];
  const int64_t L = queries_per_block(n);
  const int64_t blocks = B * ((n + L - 1) / L);
  return static_cast<size_t>(blocks) * (static_cast<size_t>(S * h + 2 * L) * sizeof(float) + S * sizeof(int32_t));
}

}  // namespace

size_t vq_attention_prepare(const OpCall& c, const CudaContext&) {
  if (shared_bytes(c.in(VqAttentionIn::codebook).shape[0], c.params.window, c.params.bidirectional) > kDefaultSharedBytes)
    opt_in_shared_memory();
  return scratch_bytes(c);
}

std::string vq_attention_unsupported_reason(const OpCall& c) {
  const int64_t S = c.in(VqAttentionIn::codebook).shape[0];
  const size_t bytes = shared_bytes(S, c.params.window, c.params.bidirectional);
  if (bytes <= max_shared_bytes()) return "";
  return "vq_attention needs " + std::to_string(bytes) + " bytes of shared memory per block (codebook size " +
         std::to_string(S) + ", window " + std::to_string(c.params.window) + "), more than the " +
         std::to_string(max_shared_bytes()) + " this GPU allows; run this model with the CPU backend";
}

void vq_attention(const OpCall& c, const CudaContext& ctx) {
  const AttnArgs a = make_args(c, ctx);
  if (a.B == 0 || a.n == 0) return;
  if (a.B > 65535) throw std::runtime_error("vq_attention: more than 65535 sequences in one call; split the batch");
  const std::string why = vq_attention_unsupported_reason(c);
  if (!why.empty()) throw std::runtime_error(why);
  const bool bidir = c.params.bidirectional;
  const size_t shared = shared_bytes(a.S, a.W, bidir);
  if (shared > kDefaultSharedBytes) opt_in_shared_memory();  // done by cuda_prepare already; cheap
  const dim3 grid(static_cast<unsigned>(a.blocks_per_row), static_cast<unsigned>(a.B));
  if (bidir) {
    bidir_kernel<<<grid, kThreads, shared, stream_of(ctx)>>>(a);
    check_launch("vq_attention bidir_kernel");
  } else {
    causal_kernel<<<grid, kThreads, shared, stream_of(ctx)>>>(a);
    check_launch("vq_attention causal_kernel");
  }
  if (!c.params.stateful) return;
  vq_push_kernel<<<static_cast<unsigned>(a.B), kThreads, 0, stream_of(ctx)>>>(a);
  check_launch("vq_push_kernel");
}

}  // namespace longvq::cuda

// Benchmarks of the CPU kernels (hidden; run with: test_ops "[.perf]"). Speed is never a test:
// they print, and assert nothing.
#include <catch2/catch.hpp>

#include <cstdio>
#include <sstream>

#include "engine/ops/op.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/ops/op_cases.h"

using namespace longvq;
using namespace longvq::optest;

TEST_CASE("perf: per-op CPU speed", "[.perf]") {
  Rng r(16);
  const CpuIsa best = cpu_force_isa(CpuIsa::avx512);
  for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (isa > best) break;
    cpu_force_isa(isa);
    for (int threads : {1, 2}) {
      const CpuContext ctx{threads};
      std::ostringstream line;
      line << cpu_isa_name(isa) << " threads=" << threads << ":";
      // linear y[T, N] = x[T, K]·Wᵀ + b with W packed as a model packs it, in GFLOP/s.
      auto linear_gflops = [&](const char* label, int64_t T, int64_t K, int64_t N) {
        Case c;
        c.op = OpKind::linear;
        c.in = {f32(r, {T, K}), f32(r, {N, K}), f32(r, {N})};
        c.prepared[1] = prepared_linear(c.in[1]);
        c.out.push_back(out(DType::f32, {T, N}));
        const OpCall call = c.call(true);
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " " << label << " " << 2.0 * static_cast<double>(T * K * N) / t * 1e-9 << " GFLOP/s;";
      };
      linear_gflops("gemv1024", 1, 1024, 1024);
      linear_gflops("gemm256x1024x1024", 256, 1024, 1024);
      linear_gflops("gemm12544x64x224", 12544, 64, 224);  // fashion-seq's mx_proj, 16 × 784 pixels
      for (bool bidir : {false, true}) {  // vq_attention n = 2048, W = 64, S = 256, e = 64, h = 128
        AttnSpec s{1, 2048, 64, 128, 256, 64, true, bidir, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_attention(" << (bidir ? "bidir" : "causal") << ",n=2048,W=64,S=256,e=64,h=128) "
             << 2048 / t << " tok/s;";
      }
      {  // the fashion-seq classifier's layer shape: bidirectional, codes of every key
        AttnSpec s{16, 784, 32, 64, 64, 32, true, true, false, false, {}};
        const Case c = make_attention(r, s);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        Case codes;
        codes.op = OpKind::vq_codes;
        codes.in = {f32(r, {16 * 784, 32}), f32(r, {64, 32})};
        codes.out.push_back(out(DType::i32, {16 * 784}));
        const OpCall codes_call = codes.call();
        const double tc = time_it([&] { cpu_run(codes_call, ctx); });
        line << " fashion-seq vq_attention(bidir,B=16,n=784,W=32,S=64,e=32,h=64) + vq_codes " << 16 * 784 / (t + tc)
             << " tok/s;";
      }
      {  // decode: B = 1, n = 1
        AttnSpec s{1, 1, 64, 128, 256, 64, true, false, false, true, {5000}};
        const Case c = make_attention(r, s);
        double t = 0;
        {
          Case run = c;
          const OpCall call = run.call();
          t = time_it([&] { cpu_run(call, ctx); });  // pos stays; the cache keeps growing
        }
        line << " vq_attention decode " << t * 1e6 << " us/token;";
      }
      {  // ema n = 2048, d = 256, N = 16
        Case c = make_ema(r, 1, 2048, 256, 16, false, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(n=2048,d=256,N=16) " << 2048 / t << " tok/s;";
      }
      {  // ema bidirectional B = 16, n = 784, d = 64, N = 16 (the fashion-seq classifier's shape)
        Case c = make_ema(r, 16, 784, 64, 16, true, false, false);
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " ema(bidir,B=16,n=784,d=64,N=16) " << 16 * 784 / t << " tok/s;";
      }
      {  // vq_codes T = 2048, e = 64, S = 256
        Case c;
        c.op = OpKind::vq_codes;
        c.in = {f32(r, {2048, 64}), f32(r, {256, 64})};
        c.out.push_back(out(DType::i32, {2048}));
        const OpCall call = c.call();
        const double t = time_it([&] { cpu_run(call, ctx); });
        line << " vq_codes(T=2048,e=64,S=256) " << 2048 / t << " keys/s";
      }
      std::printf("%s\n", line.str().c_str());
    }
  }
  cpu_force_isa(best);
  SUCCEED();
}

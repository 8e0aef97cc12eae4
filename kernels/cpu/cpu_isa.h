// Compiling one kernel body for several instruction sets.
//
// A family's vectorizable body lives in a `*_body.inc` file without includes. Its .cpp includes
// it three times, each inside its own namespace in an anonymous namespace (no symbol can be
// shared, so no AVX code can leak into a generic caller):
//
//   namespace v_generic { #include "x_body.inc" }
//   LONGVQ_ISA_BEGIN_AVX2   namespace v_avx2   { #include "x_body.inc" }  LONGVQ_ISA_END
//   LONGVQ_ISA_BEGIN_AVX512 namespace v_avx512 { #include "x_body.inc" }  LONGVQ_ISA_END
//
// and picks one at run time with cpu_isa(). GCC auto-vectorizes each copy for its target.
// OpenMP regions stay in the generic driver; the bodies are called once per work item.
//
// The AVX copies exist on x86 only: elsewhere (aarch64) the ISA macros below are not defined, a
// .cpp compiles only its generic copy, inside `#if defined(__x86_64__) || defined(__i386__)`
// blocks for the others, and aliases their names to it (namespace v_avx2 = v_generic; ...); the
// dispatcher never picks them there (cpu_isa() is always generic).
#pragma once

#define LONGVQ_PRAGMA(x) _Pragma(#x)
#if !(defined(__x86_64__) || defined(__i386__))
// No ISA sections: see above.
#elif defined(__clang__)  // clang ignores GCC's target pragmas; it has its own (sanitizer builds use it)
#define LONGVQ_ISA_BEGIN_AVX2 \
  LONGVQ_PRAGMA(clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function))
#define LONGVQ_ISA_BEGIN_AVX512                                                                    \
  LONGVQ_PRAGMA(clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), \
                                     apply_to = function))
#define LONGVQ_ISA_END LONGVQ_PRAGMA(clang attribute pop)
#else
#define LONGVQ_ISA_BEGIN_AVX2 LONGVQ_PRAGMA(GCC push_options) LONGVQ_PRAGMA(GCC target("avx2,fma"))
#define LONGVQ_ISA_BEGIN_AVX512                                  \
  LONGVQ_PRAGMA(GCC push_options)                                \
  LONGVQ_PRAGMA(GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512"))
#define LONGVQ_ISA_END LONGVQ_PRAGMA(GCC pop_options)
#endif

// Fuzz target: HTTP request bodies through the server's parsers (tools/server/api.cpp):
// /v1/completions for a byte LM and /v1/classify for a token and a pixel classifier. Only
// ApiError may escape (the server answers it as a 4xx); anything else is a finding. A body
// that parses must give a request the scheduler can take: token ids in the vocabulary, a
// finite temperature, stop strings of 1..256 bytes.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/text/tokenizer.h"
#include "loaders/config.h"
#include "tools/server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longvq;
  static const ModelConfig lm = load_config(LONGVQ_FUZZ_BYTES_CONFIG);
  static const ModelConfig tokens = load_config(LONGVQ_FUZZ_TOKENS_CONFIG);
  static const ModelConfig pixels = load_config(LONGVQ_FUZZ_PIXELS_CONFIG);
  static const Tokenizer lm_tok(lm.tokenizer), tokens_tok(tokens.tokenizer), pixels_tok(pixels.tokenizer);
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const server::CompletionRequest r = server::parse_completion(body, lm_tok, lm, server::Limits{});
    for (int32_t t : r.prompt)
      if (t < 0 || t >= lm.vocab_size) std::abort();
    if (!std::isfinite(r.params.sampling.temperature) || r.params.sampling.temperature < 0) std::abort();
    for (const std::string& s : r.params.stop)
      if (s.empty() || s.size() > 256) std::abort();
  } catch (const server::ApiError&) {
  }
  for (const auto* m : {&tokens, &pixels}) {
    try {
      const auto inputs = server::parse_classify(body, m == &tokens ? tokens_tok : pixels_tok, *m, 64, 4096);
      for (const auto& in : inputs)
        for (int32_t t : in.tokens)
          if (t < 0 || t >= m->vocab_size) std::abort();
    } catch (const server::ApiError&) {
    }
  }
  return 0;
}

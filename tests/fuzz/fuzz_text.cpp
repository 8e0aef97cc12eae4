// Fuzz target: text through the tokenizers (engine/tokenizer.cpp): bytes (with specials) and
// vocab (whitespace split, unknown words) encode, and decode of arbitrary ids. Only
// TokenizerError may escape; a decoded encode must give back the text's tokens.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"
#include "loaders/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const longvq::Tokenizer bytes(longvq::load_config(LONGVQ_FUZZ_BYTES_CONFIG).tokenizer);
  static const longvq::Tokenizer vocab(longvq::load_config(LONGVQ_FUZZ_TOKENS_CONFIG).tokenizer);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = bytes.encode(text);
  if (bytes.decode(ids) != text) std::abort();  // bytes round-trip exactly
  try {
    const std::vector<int32_t> v = vocab.encode(text);
    vocab.decode(v);
  } catch (const longvq::TokenizerError&) {
  }
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  for (const longvq::Tokenizer* t : {&bytes, &vocab}) {
    try {
      t->decode(raw);
    } catch (const longvq::TokenizerError&) {
    }
  }
  return 0;
}

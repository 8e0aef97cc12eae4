// The tokenizers config.json names (design page §1): bytes, vocab (whitespace tokens), pixels.
// Same behaviour as tools/longvq_ref/tokenizer.py, tested against it.
//
//   bytes   ids 0..255 are the UTF-8 bytes of the text, then `specials` in order (256, 257, ...)
//   vocab   the text split on whitespace exactly as Python's str.split() (ASCII whitespace,
//           \x1c-\x1f and the Unicode spaces); id = index in `tokens` (the last one when a token
//           is listed twice, as Python's dict); an unknown word maps to `unk` or is an error
//   pixels  value v in 0..255 → (v/255 − mean)/std in float32, mean and std rounded to float
//           first (numpy's encode_pixels, bit for bit)
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "loaders/config.h"

namespace longvq {

// Input the tokenizer cannot take (unknown token, id out of range, wrong kind); the message
// says which and what to do.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerConfig cfg);

  TokenizerConfig::Kind kind() const { return cfg_.kind; }
  const TokenizerConfig& config() const { return cfg_; }

  // Id of a special token of a bytes tokenizer, e.g. "<bos>" (the first if listed twice).
  int32_t special_id(std::string_view name) const;

  // Text → ids (bytes, vocab). A pixels tokenizer throws: use normalize / encode_pixels.
  std::vector<int32_t> encode(std::string_view text) const;

  // Ids → output bytes: byte ids as themselves, specials as their text, vocab tokens joined by
  // single spaces. Throws for ids out of range and for a pixels tokenizer.
  std::string decode(std::span<const int32_t> ids) const;

  // Pixels: (v/255 − mean)/std in float32. Throws for the other kinds.
  float normalize(uint8_t value) const;
  float normalize(float value) const;
  std::vector<float> encode_pixels(std::span<const uint8_t> pixels) const;

 private:
  void need_pixels() const;

  TokenizerConfig cfg_;
  std::unordered_map<std::string, int32_t> index_;  // vocab: token → id
  float mean_ = 0.5f, std_ = 0.5f;                  // pixels, rounded to float as numpy does
};

}  // namespace longvq

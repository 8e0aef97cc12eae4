#include "engine/text/tokenizer.h"

#include <limits>
#include <utility>

namespace longvq {

namespace {

// Length in bytes of the whitespace character starting at s[i] (0 when there is none): exactly
// the characters for which Python's str.isspace() is true, in UTF-8.
size_t space_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const unsigned c = b(0);
  if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20)) return 1;
  if (c == 0xc2 && (b(1) == 0x85 || b(1) == 0xa0)) return 2;                 // U+0085, U+00A0
  if (c == 0xe1 && b(1) == 0x9a && b(2) == 0x80) return 3;                   // U+1680
  if (c == 0xe2 && b(1) == 0x80 && ((b(2) >= 0x80 && b(2) <= 0x8a) ||        // U+2000..U+200A
                                    b(2) == 0xa8 || b(2) == 0xa9 ||          // U+2028, U+2029
                                    b(2) == 0xaf)) return 3;                 // U+202F
  if (c == 0xe2 && b(1) == 0x81 && b(2) == 0x9f) return 3;                   // U+205F
  if (c == 0xe3 && b(1) == 0x80 && b(2) == 0x80) return 3;                   // U+3000
  return 0;
}

}  // namespace

Tokenizer::Tokenizer(TokenizerConfig cfg) : cfg_(std::move(cfg)) {
  constexpr size_t kMaxIds = static_cast<size_t>(std::numeric_limits<int32_t>::max()) - 256;
  if (cfg_.tokens.size() > kMaxIds || cfg_.specials.size() > kMaxIds) {
    throw TokenizerError("tokenizer lists more tokens than int32 ids can number");
  }
  if (cfg_.kind == TokenizerConfig::Kind::vocab) {
    index_.reserve(cfg_.tokens.size());
    for (size_t i = 0; i < cfg_.tokens.size(); ++i) index_.insert_or_assign(cfg_.tokens[i], static_cast<int32_t>(i));
    if (cfg_.unk && !index_.count(*cfg_.unk)) {
      throw TokenizerError("tokenizer.unk '" + *cfg_.unk + "' is not in tokenizer.tokens");
    }
  }
  mean_ = static_cast<float>(cfg_.mean);
  std_ = static_cast<float>(cfg_.std);
}

int32_t Tokenizer::special_id(std::string_view name) const {
  if (cfg_.kind == TokenizerConfig::Kind::bytes) {
    for (size_t i = 0; i < cfg_.specials.size(); ++i) {
      if (cfg_.specials[i] == name) return 256 + static_cast<int32_t>(i);
    }
  }
  throw TokenizerError("this tokenizer has no special token '" + std::string(name) + "'");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  switch (cfg_.kind) {
    case TokenizerConfig::Kind::bytes:
      ids.reserve(text.size());
      for (char c : text) ids.push_back(static_cast<unsigned char>(c));
      return ids;
    case TokenizerConfig::Kind::vocab: {
      size_t i = 0;
      while (i < text.size()) {
        if (size_t n = space_len(text, i)) {
          i += n;
          continue;
        }
        const size_t start = i;
        while (i < text.size() && space_len(text, i) == 0) ++i;
        const std::string word(text.substr(start, i - start));
        if (auto it = index_.find(word); it != index_.end()) {
          ids.push_back(it->second);
        } else if (cfg_.unk) {
          ids.push_back(index_.at(*cfg_.unk));
        } else {
          throw TokenizerError("token '" + word + "' is not in the model's vocabulary and it has no "
                               "unknown-token; check the input matches the model's data set");
        }
      }
      return ids;
    }
    case TokenizerConfig::Kind::pixels:
      break;
  }
  throw TokenizerError("a pixels tokenizer encodes pixel values: use encode_pixels");
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  switch (cfg_.kind) {
    case TokenizerConfig::Kind::bytes: {
      const int64_t n = 256 + static_cast<int64_t>(cfg_.specials.size());
      for (int32_t id : ids) {
        if (id < 0 || id >= n) {
          throw TokenizerError("id " + std::to_string(id) + " is out of range for this tokenizer (ids 0.." +
                               std::to_string(n - 1) + ")");
        }
        if (id < 256) out += static_cast<char>(static_cast<unsigned char>(id));
        else out += cfg_.specials[static_cast<size_t>(id - 256)];
      }
      return out;
    }
    case TokenizerConfig::Kind::vocab: {
      const int64_t n = static_cast<int64_t>(cfg_.tokens.size());
      bool first = true;
      for (int32_t id : ids) {
        if (id < 0 || id >= n) {
          throw TokenizerError("id " + std::to_string(id) + " is out of range for this tokenizer (ids 0.." +
                               std::to_string(n - 1) + ")");
        }
        if (!first) out += ' ';
        first = false;
        out += cfg_.tokens[static_cast<size_t>(id)];
      }
      return out;
    }
    case TokenizerConfig::Kind::pixels:
      break;
  }
  throw TokenizerError("a pixels tokenizer has no text to decode");
}

void Tokenizer::need_pixels() const {
  if (cfg_.kind != TokenizerConfig::Kind::pixels) throw TokenizerError("encode_pixels needs a pixels tokenizer");
}

float Tokenizer::normalize(uint8_t value) const { return normalize(static_cast<float>(value)); }

float Tokenizer::normalize(float value) const {
  need_pixels();
  return (value / 255.0f - mean_) / std_;
}

std::vector<float> Tokenizer::encode_pixels(std::span<const uint8_t> pixels) const {
  need_pixels();
  std::vector<float> out;
  out.reserve(pixels.size());
  for (uint8_t p : pixels) out.push_back((static_cast<float>(p) / 255.0f - mean_) / std_);
  return out;
}

}  // namespace longvq

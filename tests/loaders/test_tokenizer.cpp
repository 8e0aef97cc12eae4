// Tokenizers against the Python reference: bytes, vocab (str.split() whitespace), pixels
// (bit-exact against the fixture's stored inputs).
#include <cstring>
#include <functional>

#include "engine/text/tokenizer.h"
#include "loaders/config.h"
#include "test_util.h"

using namespace longvq;
using namespace longvq::test;

namespace {

TokenizerConfig vocab_config(int n, std::optional<std::string> unk = std::nullopt) {
  TokenizerConfig t;
  t.kind = TokenizerConfig::Kind::vocab;
  for (int i = 0; i < n; ++i) {
    std::string token = "w";  // not "w" + to_string(i): GCC 12's -Wrestrict false positive at -O3
    token += std::to_string(i);
    t.tokens.push_back(token);
  }
  t.unk = std::move(unk);
  return t;
}

std::string tokenizer_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const TokenizerError& e) {
    return e.what();
  }
  FAIL("expected a TokenizerError");
  return "";
}

}  // namespace

TEST_CASE("bytes tokenizer: UTF-8 bytes, then specials", "[tokenizer]") {
  const ModelConfig cfg = load_config(fixtures_dir() / "lm_bytes_layernorm_tied" / "config.json");
  const Tokenizer tok(cfg.tokenizer);
  CHECK(tok.kind() == TokenizerConfig::Kind::bytes);
  // Python: list("héllo €\n".encode("utf-8"))
  const std::string text = "h\xc3\xa9llo \xe2\x82\xac\n";
  const std::vector<int32_t> ids = tok.encode(text);
  CHECK(ids == std::vector<int32_t>{104, 195, 169, 108, 108, 111, 32, 226, 130, 172, 10});
  CHECK(tok.decode(ids) == text);
  CHECK(tok.encode("").empty());
  CHECK(tok.special_id("<bos>") == 256);
  const std::vector<int32_t> with_bos = {256, 104, 105, 256};
  CHECK(tok.decode(with_bos) == "<bos>hi<bos>");
  const std::vector<int32_t> nul = {0, 255};
  CHECK(tok.decode(nul) == std::string("\0\xff", 2));
  CHECK(tokenizer_error([&] { (void)tok.special_id("<eos>"); }) == "this tokenizer has no special token '<eos>'");
  const std::vector<int32_t> bad = {257};
  CHECK(contains(tokenizer_error([&] { (void)tok.decode(bad); }), "id 257 is out of range for this tokenizer (ids 0..256)"));
  const std::vector<int32_t> neg = {-1};
  CHECK(contains(tokenizer_error([&] { (void)tok.decode(neg); }), "id -1 is out of range"));
  CHECK(contains(tokenizer_error([&] { (void)tok.normalize(uint8_t{3}); }), "encode_pixels needs a pixels tokenizer"));
}

TEST_CASE("vocab tokenizer splits exactly as Python's str.split()", "[tokenizer]") {
  const Tokenizer tok(vocab_config(40));
  CHECK(tok.encode(" w3  w0\nw28 ") == std::vector<int32_t>{3, 0, 28});
  CHECK(tok.encode("\tw1\r\n\x0bw2\x0cw3") == std::vector<int32_t>{1, 2, 3});
  // Python's str.isspace() is also true for \x1c-\x1f and the Unicode spaces:
  // "w1\x1cw2\x1fw3\u0085w4\u00a0w5\u1680w6\u2000w7\u200aw8\u2028w9\u2029w10\u202fw11\u205fw12\u3000w13".split()
  const std::string unicode_spaced =
      "w1\x1cw2\x1fw3\xc2\x85w4\xc2\xa0w5\xe1\x9a\x80w6\xe2\x80\x80w7\xe2\x80\x8aw8\xe2\x80\xa8w9\xe2\x80\xa9"
      "w10\xe2\x80\xafw11\xe2\x81\x9fw12\xe3\x80\x80w13";
  CHECK(tok.encode(unicode_spaced) == std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});
  CHECK(tok.encode("").empty());
  CHECK(tok.encode(" \n\t ").empty());
  // Zero-width space (U+200B) is not whitespace for Python: "w1\u200bw2" is one (unknown) word.
  const std::string zwsp = "w1\xe2\x80\x8bw2";
  CHECK(contains(tokenizer_error([&] { (void)tok.encode(zwsp); }), "token 'w1\xe2\x80\x8bw2' is not in"));
  CHECK(tokenizer_error([&] { (void)tok.encode("w1 w99 w2"); }) ==
        "token 'w99' is not in the model's vocabulary and it has no unknown-token; check the input matches the "
        "model's data set");
  const std::vector<int32_t> ids = {3, 0, 28};
  CHECK(tok.decode(ids) == "w3 w0 w28");
  const std::vector<int32_t> none;
  CHECK(tok.decode(none).empty());
  const std::vector<int32_t> bad = {40};
  CHECK(contains(tokenizer_error([&] { (void)tok.decode(bad); }), "id 40 is out of range for this tokenizer (ids 0..39)"));
  CHECK(contains(tokenizer_error([&] { (void)tok.special_id("<bos>"); }), "no special token '<bos>'"));
}

TEST_CASE("vocab tokenizer: unk, duplicates, the fixture's vocabulary", "[tokenizer]") {
  const Tokenizer with_unk(vocab_config(5, "w4"));
  CHECK(with_unk.encode("w1 zzz w2 ???") == std::vector<int32_t>{1, 4, 2, 4});
  // Python builds {tok: i}: a token listed twice maps to its last index.
  TokenizerConfig dup = vocab_config(3);
  dup.tokens.push_back("w1");
  CHECK(Tokenizer(dup).encode("w1 w2") == std::vector<int32_t>{3, 2});
  const ModelConfig cfg = load_config(fixtures_dir() / "cls_batchnorm_tokens" / "config.json");
  const Tokenizer fx(cfg.tokenizer);
  CHECK(fx.encode("t0 t39 t7") == std::vector<int32_t>{0, 39, 7});
}

TEST_CASE("pixels tokenizer matches the fixture's stored inputs bit for bit", "[tokenizer]") {
  const fs::path dir = fixtures_dir() / "cls_pixels_postnorm_rawwin";
  const ModelConfig cfg = load_config(dir / "config.json");
  const Tokenizer tok(cfg.tokenizer);
  CHECK(tok.kind() == TokenizerConfig::Kind::pixels);
  const SafetensorsFile expected(dir / "expected.safetensors");
  const TensorInfo& pixels = expected.at("pixels");
  const TensorInfo& inputs = expected.at("inputs");
  REQUIRE(pixels.dtype == FileDType::U8);
  REQUIRE(inputs.dtype == FileDType::F32);
  REQUIRE(pixels.shape == inputs.shape);
  const size_t n = pixels.nbytes;
  REQUIRE(n > 0);
  std::vector<uint8_t> px(n);
  std::memcpy(px.data(), pixels.data, n);
  std::vector<float> want(n);
  std::memcpy(want.data(), inputs.data, n * 4);

  const std::vector<float> got = tok.encode_pixels(px);
  REQUIRE(got.size() == n);
  CHECK(std::memcmp(got.data(), want.data(), n * 4) == 0);
  size_t distinct_ok = 0;
  for (size_t i = 0; i < n; ++i) {
    INFO("pixel " << int(px[i]));
    CHECK(std::bit_cast<uint32_t>(tok.normalize(px[i])) == std::bit_cast<uint32_t>(want[i]));
    CHECK(std::bit_cast<uint32_t>(tok.normalize(static_cast<float>(px[i]))) == std::bit_cast<uint32_t>(want[i]));
    distinct_ok += px[i] != 0;
  }
  CHECK(distinct_ok > 0);  // not only padding
  // Python: ((np.float32([0, 255]) / np.float32(255) - np.float32(0.286)) / np.float32(0.353))
  CHECK(std::bit_cast<uint32_t>(tok.normalize(uint8_t{0})) == 0xbf4f6929u);
  CHECK(std::bit_cast<uint32_t>(tok.normalize(uint8_t{255})) == 0x4001734fu);
  CHECK(contains(tokenizer_error([&] { (void)tok.encode("1 2"); }), "use encode_pixels"));
  const std::vector<int32_t> ids = {1};
  CHECK(contains(tokenizer_error([&] { (void)tok.decode(ids); }), "has no text to decode"));
}

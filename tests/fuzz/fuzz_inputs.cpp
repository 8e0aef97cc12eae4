// Fuzz target: the classifier input readers of `longvq classify` (tools/cli/inputs.cpp). The
// first byte picks the format (bits 1-2: JSONL, ListOps TSV, IDX images + labels), for JSONL a
// token or pixel model (bit 0), a record limit (bit 3), for IDX whether labels are read
// (bit 4), whether labels are ignored (bit 5, --no-labels) and pixel inputs of any length
// (bit 6, --pixels any); the rest is the file (IDX: a u16 images length, the images file, the
// labels file).
// TSV goes to the token model and IDX to the pixel model (the other pairings are refused
// before any byte is read). Only InputError (bad record) may escape.
#include <algorithm>
#include <cstddef>
#include <optional>
#include <cstdint>
#include <sstream>
#include <string>

#include "loaders/config.h"
#include "tests/fuzz/fuzz_util.h"
#include "tools/cli/common.h"
#include "tools/cli/inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const longvq::ModelConfig tokens_cfg = longvq::load_config(LONGVQ_FUZZ_TOKENS_CONFIG);
  static const longvq::ModelConfig pixels_cfg = longvq::load_config(LONGVQ_FUZZ_PIXELS_CONFIG);
  if (size < 1) return 0;
  const uint8_t pick = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const longvq::cli::InputReader tokens(tokens_cfg), pixels(pixels_cfg);
  longvq::cli::ReadOptions options;
  options.limit = (pick & 8) ? 3 : -1;
  options.ignore_labels = (pick & 32) != 0;
  options.pixels = (pick & 64) ? longvq::cli::kAnyPixels : longvq::cli::kSamePixels;
  try {
    switch ((pick >> 1) & 3) {
      case 0: {
        std::istringstream in(body);
        ((pick & 1) ? pixels : tokens).read_jsonl(in, "fuzz.jsonl", options);
        break;
      }
      case 1: {
        std::istringstream in(body);
        tokens.read_tsv(in, "fuzz.tsv", options);
        break;
      }
      default: {  // a u16 (little-endian) length, the images file, then the labels file
        if (body.size() < 2) return 0;
        const size_t n_images = std::min<size_t>(body.size() - 2, static_cast<uint8_t>(body[0]) | static_cast<uint8_t>(body[1]) << 8);
        const uint8_t* images_at = data + 3;
        const auto& images = fuzz::write_input(images_at, n_images, "-images-idx3-ubyte");
        const auto& labels = fuzz::write_input(images_at + n_images, body.size() - 2 - n_images, "-labels-idx1-ubyte");
        pixels.read_idx(images, (pick & 16) ? std::optional(labels) : std::nullopt, options);
        break;
      }
    }
  } catch (const longvq::cli::InputError&) {
  }
  return 0;
}

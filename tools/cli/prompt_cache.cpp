#include "tools/cli/prompt_cache.h"

#include <map>
#include <string>
#include <vector>

#include "loaders/load_error.h"
#include "loaders/safetensors.h"

namespace longvq::cli {

namespace {
constexpr const char* kPendingKey = "pending_token";
}

void save_prompt_cache(const State& state, int32_t pending, const std::filesystem::path& path) {
  state.save(path, {{kPendingKey, std::to_string(pending)}});
}

std::optional<int32_t> read_pending_token(const std::filesystem::path& path, int64_t vocab_size) {
  SafetensorsFile file(path, LoadMode::read);
  auto it = file.metadata().find(kPendingKey);
  if (it == file.metadata().end()) return std::nullopt;
  try {
    size_t used = 0;
    const long v = std::stol(it->second, &used);
    if (used == it->second.size() && v >= 0 && v < vocab_size) return static_cast<int32_t>(v);
  } catch (const std::exception&) {
  }
  throw StateError(path.string() + ": metadata pending_token '" + it->second + "' is not a token id of this model (0.." +
                   std::to_string(vocab_size - 1) + "); the file is corrupt");
}

}  // namespace longvq::cli

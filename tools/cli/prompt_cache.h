// Prompt cache files for `generate --state-out / --state-in`.
//
// A cache file is a plain engine State file (docs/file-formats.md §3, readable by State::load
// and the Python reference) plus one metadata entry, "pending_token": the context's last token,
// which the state has NOT consumed yet. Continuing feeds that token first (then any new prompt),
// which yields the logits the next token is sampled from, so a resumed run gives exactly the
// continuation of a run that never stopped, even with an empty prompt. (llama.cpp's prompt
// cache re-evaluates the last token for the same reason; a State file holds no logits.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "engine/runtime/state.h"

namespace longvq::cli {

// Saves `state` to `path` with `pending` as its pending token.
void save_prompt_cache(const State& state, int32_t pending, const std::filesystem::path& path);

// The pending token of a state file, if it has one (a State saved by other tools has none).
// A value that is not a token id of a `vocab_size` vocabulary is a StateError.
std::optional<int32_t> read_pending_token(const std::filesystem::path& path, int64_t vocab_size);

}  // namespace longvq::cli

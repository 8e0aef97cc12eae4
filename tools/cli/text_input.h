// Reading a whole input (generate's prompt, perplexity's text, classify's JSONL or TSV) from a
// file or stdin, bounded: a regular file is needed where a file is named (a FIFO with no
// writer would block forever, a directory reads as nothing, /dev/zero never ends), and no more
// than --max-input-bytes is ever read (a pipe or stdin stops there with an error).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace longvq::cli {

// 1 GiB: far more than any prompt or data set here, far less than what an endless stream costs.
inline constexpr int64_t kDefaultMaxInputBytes = int64_t{1} << 30;

// Adds --max-input-bytes to a subcommand.
void add_max_input_flag(CLI::App& app, int64_t& max_bytes);

// The bytes of `path` ("-" = stdin). Errors: a file that is missing, unreadable, not regular
// or too large for this machine's memory (runtime_error naming it, exit 1); an input over
// `max_bytes` or a closed stdin (UsageError, exit 2).
std::string read_input(const std::string& path, int64_t max_bytes);

// "<stdin>" for "-", else the path: how messages name an input.
std::string input_name(const std::string& path);

}  // namespace longvq::cli

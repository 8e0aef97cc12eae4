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

// The lines of `path` ("-" = stdin) one at a time, for inputs streamed rather than read whole
// (classify): the same checks as read_input (a regular file where a file is named, a closed stdin
// refused), and no line longer than `max_line_bytes` (an endless stream with no newline stops
// there: UsageError). Lines come without their "\n" or "\r\n".
class InputLines {
 public:
  InputLines(const std::string& path, int64_t max_line_bytes);
  ~InputLines();
  InputLines(const InputLines&) = delete;
  InputLines& operator=(const InputLines&) = delete;

  bool next(std::string& line);
  int64_t bytes_read() const { return consumed_; }
  int64_t size() const { return size_; }  // a file's size at open, -1 for stdin

 private:
  bool fill();
  std::string name_;
  int fd_ = -1;
  bool own_ = false, eof_ = false;
  int64_t max_line_, size_ = -1, consumed_ = 0;
  std::string buf_;
  size_t at_ = 0, scanned_ = 0;  // the next line starts at at_; no \n in [at_, scanned_)
};

// "<stdin>" for "-", else the path: how messages name an input.
std::string input_name(const std::string& path);

}  // namespace longvq::cli

// Opening and reading input files without surprises: a FIFO, a directory or a device where a
// regular file is needed is refused at once (a FIFO with no writer would block open() forever,
// /dev/zero would never end), and a read stops at a cap instead of exhausting memory.
// Used by the loaders (safetensors, config.json) and the command line (prompts, inputs).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>

namespace longvq {

// "a directory", "a FIFO (named pipe)", "a character device", ... for a stat() st_mode.
std::string file_kind_name(mode_t mode);

// An open read-only file descriptor, closed when this goes away.
class InputFile {
 public:
  InputFile() = default;
  InputFile(InputFile&& other) noexcept : fd_(other.fd_), size_(other.size_) { other.fd_ = -1; }
  InputFile& operator=(InputFile&&) = delete;
  InputFile(const InputFile&) = delete;
  ~InputFile();

  int fd() const { return fd_; }
  size_t size() const { return size_; }  // at open time

 private:
  friend InputFile open_regular_file(const std::filesystem::path&, std::string&, int&);
  int fd_ = -1;
  size_t size_ = 0;
};

// Opens `path` for reading if it is a regular file (symbolic links are followed). The open does
// not block on a FIFO. On failure the result has fd() < 0, `error` is errno (0 when the file
// exists but is not regular) and `why` says what went wrong: "No such file or directory", "is a
// directory, not a regular file", "is a FIFO (named pipe), not a regular file", ...
InputFile open_regular_file(const std::filesystem::path& path, std::string& why, int& error);

enum class ReadStatus { ok, too_big, failed };

// Appends everything `fd` holds to `out`, but at most `max_bytes`: reading stops with too_big as
// soon as one byte more is seen (so an endless stream costs max_bytes + 1 bytes, no more).
// `error` is errno on failed. EINTR is retried.
ReadStatus read_all(int fd, size_t max_bytes, std::string& out, int& error);

}  // namespace longvq

// Writing a file whole or not at all (state files, classify -o, --metrics-json).
//
// The bytes go to a temporary file of a name no other writer uses (TARGET.tmp.<random>, in the
// target's directory, created with O_EXCL), are fsync'd, and the temporary is renamed over the
// target. So two processes writing the same path never mix their bytes: the last rename wins,
// whole. A reader never sees a half-written file, and a failed write (full disk, `ulimit -f`,
// which is EFBIG here rather than a SIGXFSZ that kills the process) leaves the target as it
// was and no temporary behind.
//
// The target must be a regular file or not exist yet. A directory, device, FIFO or socket is
// refused, never replaced (renaming over /dev/null would put a regular file in its place). A
// symbolic link is followed: its target is replaced, the link stays.
#pragma once

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace longvq {

// What went wrong, with the path and what to do; nothing was written to the target.
class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether `path` can be a target: a regular file, or nothing yet in an existing directory.
// Returns "" when it can, else why not ("is a directory; give a file path", ...). Lets a
// program refuse a bad output path before a long run instead of after it.
std::string output_path_problem(const std::filesystem::path& path);

class AtomicFile {
 public:
  // Checks the target (WriteError from output_path_problem) and creates the temporary file.
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();  // without commit(): the temporary is removed, the target untouched
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // WriteError on failure (temporary removed)
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync, close, rename over the target. WriteError on failure (temporary removed).
  void commit();

  const std::filesystem::path& target() const { return target_; }  // after following links

 private:
  [[noreturn]] void fail(const std::string& what, int error);
  void discard() noexcept;

  std::filesystem::path target_, temp_;
  int fd_ = -1;
  int slot_ = -1;  // in the table remove_pending_temp_files() reads
};

// Writes `bytes` to `path` with an AtomicFile.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Unlinks the temporary file of every AtomicFile not yet committed or discarded. Only
// async-signal-safe calls: a SIGINT/SIGTERM handler calls it so that an interrupted write
// leaves nothing behind, then lets the signal end the process.
void remove_pending_temp_files() noexcept;

}  // namespace longvq

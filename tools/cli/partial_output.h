// classify -o OUT: predictions appended as they are made to OUT.partial, renamed over OUT when
// the job completes. A job killed at any point leaves OUT.partial, whose complete lines are
// exactly the first rows of the output; --resume keeps them (a torn last line is cut off) and
// the job appends the rest, so a resumed job writes every row exactly once.
//
// OUT.partial is locked (flock) while a job writes it: a second job on the same -o is refused
// instead of interleaving its rows. OUT itself is untouched until the rename: a failed or
// killed job never destroys an earlier complete OUT.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace longvq::cli {

class PartialOutput {
 public:
  // resume: continue OUT.partial, or a complete OUT (its rows count as done) when there is no
  // partial. Without resume an OUT.partial that holds rows is refused (UsageError: it is the
  // only copy of an interrupted run's work). `each_done` sees every line already written
  // (without "\n"), in order, and may throw to refuse the file.
  PartialOutput(const std::filesystem::path& target, bool resume,
                const std::function<void(const std::string& line, int64_t row)>& each_done = {});
  ~PartialOutput();  // without commit(): OUT.partial stays (resumable), or goes if it holds no row
  PartialOutput(const PartialOutput&) = delete;
  PartialOutput& operator=(const PartialOutput&) = delete;

  int64_t rows_done() const { return rows_done_; }  // rows kept from an earlier run
  int64_t rows_written() const { return rows_; }    // rows in the file now
  const std::filesystem::path& partial() const { return partial_; }
  // Appends whole lines. On a failed write (full disk, ulimit -f) the file is cut back to the
  // rows before it and WriteError says how many are kept and how to resume.
  void append(std::string_view lines);
  // fsync, rename OUT.partial over OUT.
  void commit();

 private:
  std::filesystem::path target_, partial_;
  int fd_ = -1;
  int64_t rows_done_ = 0, rows_ = 0, bytes_ = 0;
  bool committed_ = false;
};

}  // namespace longvq::cli

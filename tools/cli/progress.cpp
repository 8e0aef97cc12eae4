#include "tools/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "tools/cli/stats.h"

namespace longvq::cli {

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled && total > 0),
      start_ns_(now_ns()) {}

Progress::~Progress() { finish(); }

bool Progress::stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

void Progress::update(int64_t done) {
  if (!enabled_) return;
  const int64_t t = now_ns();
  if (done < total_ && t - last_draw_ns_ < 100'000'000) return;
  last_draw_ns_ = t;
  draw(done);
}

void Progress::draw(int64_t done) {
  const double elapsed = static_cast<double>(now_ns() - start_ns_) * 1e-9;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
  const int width = 24;
  const int filled = static_cast<int>(width * std::clamp(static_cast<double>(done) / static_cast<double>(total_), 0.0, 1.0));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(width - filled), '-');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %3d%%  %.1f %s/s  ETA %s \x1b[K", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_),
               static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total_)), rate, unit_.c_str(),
               format_duration(eta).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (drawn_) {
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace longvq::cli

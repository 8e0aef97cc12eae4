// A one-line progress bar on stderr with count, rate and ETA, drawn only when stderr is a
// terminal (never in pipes, logs or tests), at most ~10 times a second.
//
//   classify [##########----------]  512/1000  51%  803.2 seq/s  ETA 0:01
#pragma once

#include <cstdint>
#include <string>

namespace longvq::cli {

class Progress {
 public:
  // `unit` names what is counted ("seq", "tok"); enabled = false draws nothing.
  Progress(std::string label, int64_t total, std::string unit, bool enabled);
  ~Progress();

  void update(int64_t done);
  void finish();  // clears the line

  static bool stderr_is_terminal();

 private:
  void draw(int64_t done);

  std::string label_, unit_;
  int64_t total_;
  bool enabled_;
  bool drawn_ = false;
  int64_t start_ns_, last_draw_ns_ = 0;
};

// "1:02:03" / "2:03".
std::string format_duration(double seconds);

}  // namespace longvq::cli

#include "tools/cli/flag_checks.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "tools/cli/common.h"

namespace longvq::cli {
namespace {

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return group_digits(static_cast<int64_t>(v));
  return strf("%g", v);
}

}  // namespace

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string range = hi == std::numeric_limits<int64_t>::max()
                                ? ">= " + group_digits(lo)
                                : "from " + group_digits(lo) + " to " + group_digits(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        int64_t v = 0;
        const char* end = s.data() + s.size();
        const auto [ptr, ec] = std::from_chars(s.data(), end, v);
        if (s.empty() || ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
          return "'" + s + "' is not a whole number; give one " + range;
        if (ec == std::errc::result_out_of_range || v < lo || v > hi) return s + " is out of range; give a whole number " + range;
        return "";
      },
      "", "integer_in");
}

CLI::Validator number_in(double lo, double hi, bool lo_open) {
  std::string range = std::string(lo_open ? "> " : ">= ") + number_text(lo);
  if (std::isfinite(hi)) range = lo_open ? range + " and <= " + number_text(hi) : "from " + number_text(lo) + " to " + number_text(hi);
  return CLI::Validator(
      [lo, hi, lo_open, range](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
          return "'" + s + "' is not a finite number; give one " + range;
        if ((lo_open ? v <= lo : v < lo) || v > hi) return s + " is out of range; give a number " + range;
        return "";
      },
      "", "number_in");
}

CLI::Validator not_empty(const std::string& message) {
  return CLI::Validator([message](std::string& s) -> std::string { return s.empty() ? message : ""; }, "", "not_empty");
}

}  // namespace longvq::cli

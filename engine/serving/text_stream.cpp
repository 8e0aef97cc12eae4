#include "engine/serving/text_stream.h"

#include <algorithm>

namespace longvq {
namespace {

// Length of the UTF-8 sequence a lead byte starts (0: not a lead byte).
size_t utf8_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

TextStream::TextStream(std::vector<std::string> stops, bool utf8) : utf8_(utf8) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

size_t TextStream::held_back() const {
  size_t hold = 0;
  for (const std::string& s : stops_)  // the longest suffix that is a proper prefix of a stop
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  if (utf8_) {  // an unfinished character at the end
    for (size_t back = 1; back <= std::min<size_t>(3, pending_.size()); ++back) {
      const auto c = static_cast<unsigned char>(pending_[pending_.size() - back]);
      if (continuation(c)) continue;
      const size_t len = utf8_length(c);
      if (len > back) hold = std::max(hold, back);
      break;
    }
  }
  return hold;
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return {};
  pending_.append(piece);
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  const size_t emit = pending_.size() - held_back();
  std::string out = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return out;
}

std::string TextStream::flush() {
  std::string out;
  out.swap(pending_);
  return stopped_ ? std::string() : out;
}

std::string to_valid_utf8(std::string_view b) {
  std::string out;
  out.reserve(b.size());
  size_t i = 0;
  while (i < b.size()) {
    const auto c = static_cast<unsigned char>(b[i]);
    size_t len = utf8_length(c);
    bool ok = len > 0 && i + len <= b.size();
    for (size_t k = 1; ok && k < len; ++k) ok = continuation(static_cast<unsigned char>(b[i + k]));
    if (ok && len == 3) {  // no overlong forms, no surrogates
      const auto c1 = static_cast<unsigned char>(b[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    }
    if (ok && len == 4) {
      const auto c1 = static_cast<unsigned char>(b[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(b.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      ++i;
    }
  }
  return out;
}

}  // namespace longvq

// Turns generated token pieces into text a client may be shown, piece by piece: stop strings are
// found across piece boundaries, and what could still become one (a suffix of the text that is
// a prefix of a stop string) is held back until it cannot; with `utf8`, an incomplete UTF-8
// sequence at the end is held back too (a byte tokenizer may split a character over tokens), so
// every emitted chunk is whole characters (what JSON and SSE need). Shared by the CLI, the
// server and the binding.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace longvq {

class TextStream {
 public:
  TextStream(std::vector<std::string> stops, bool utf8);

  // Appends a piece; returns the text that became safe to emit. Once a stop string completes,
  // the text before it is returned, stopped() is true and later pieces are ignored.
  std::string push(std::string_view piece);
  // At the end of the generation: whatever was held back (not a stop string). With utf8, an
  // incomplete trailing sequence is returned as is; callers that need valid UTF-8 replace it.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  size_t held_back() const;  // how many trailing bytes of pending_ must wait

  std::vector<std::string> stops_;
  bool utf8_;
  std::string pending_;  // received, not emitted
  bool stopped_ = false;
};

// Bytes → valid UTF-8: every malformed or incomplete sequence becomes U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace longvq

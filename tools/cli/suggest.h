// "Did you mean ...?": the closest of some known names to a mistyped one (an unknown
// subcommand, flag or JSONL key), by edit distance.
#pragma once

#include <string>
#include <vector>

namespace longvq::cli {

// Levenshtein distance (insertions, deletions, substitutions; a swap of two neighbours counts 1).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, if it is close enough to be a likely typo (at most a third
// of the word's length, and at least 1, edits away); "" otherwise.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace longvq::cli

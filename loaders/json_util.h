// Internal helpers of the loaders: JSON text checks and Python-style value printing, so that
// messages read like the Python reference's (`[2, 3]`, `'name'`, `1e-05`). Not a public API.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace longvq::detail {

// Deepest nesting of arrays/objects in JSON text (strings skipped); stops counting once past
// `limit` and returns limit + 1. Used to refuse hostile nesting before building a DOM.
size_t json_depth(std::string_view text, size_t limit);

// Python's repr() of a float: shortest round-trip digits, "1e-05", "0.0", "inf".
std::string py_float_repr(double v);

// Python's repr() of a str, for the plain strings of our files ('name', with ' and \ escaped).
std::string py_str_repr(std::string_view s);

// Python's repr() of the value json.loads would give: None, True, 3, 2.5, 'x', [1, 2], {'k': 1}.
std::string py_repr(const nlohmann::json& j);

// ['a', 'b'] / [2, 3]
std::string py_list_repr(const std::vector<std::string>& items);
std::string py_list_repr(const std::vector<int64_t>& items);

}  // namespace longvq::detail

#include "loaders/load_error.h"

#include <utility>

namespace longvq {

namespace {
std::string compose(const std::string& file, const std::string& message) {
  return file.empty() ? message : file + ": " + message;
}
}  // namespace

LoadError::LoadError(Kind kind, std::string file, std::string tensor, const std::string& message)
    : std::runtime_error(compose(file, message)),
      kind_(kind),
      file_(std::move(file)),
      tensor_(std::move(tensor)) {}

std::string_view to_string(LoadError::Kind kind) {
  using K = LoadError::Kind;
  switch (kind) {
    case K::io: return "io";
    case K::missing_file: return "missing_file";
    case K::truncated: return "truncated";
    case K::bad_header: return "bad_header";
    case K::bad_json: return "bad_json";
    case K::unknown_dtype: return "unknown_dtype";
    case K::bad_shape: return "bad_shape";
    case K::bad_size: return "bad_size";
    case K::out_of_range: return "out_of_range";
    case K::overlap: return "overlap";
    case K::missing_tensor: return "missing_tensor";
    case K::unexpected_tensor: return "unexpected_tensor";
    case K::shape_mismatch: return "shape_mismatch";
    case K::wrong_dtype: return "wrong_dtype";
    case K::bad_format: return "bad_format";
    case K::bad_config: return "bad_config";
    case K::unknown_version: return "unknown_version";
    case K::bad_value: return "bad_value";
  }
  return "unknown";
}

}  // namespace longvq

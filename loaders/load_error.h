// The one exception type of the file loaders (safetensors, config.json, model directories).
//
// Every message names the file (what() starts with "<file>: "), the tensor where there is one,
// what was expected and what was found, and what to do about it, in the style of the Python
// reference (tools/longvq_ref). kind() lets callers and tests tell the failures apart without
// parsing text.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace longvq {

class LoadError : public std::runtime_error {
 public:
  enum class Kind {
    io,                 // cannot open / stat / read / map the file
    missing_file,       // a model directory without config.json or model.safetensors
    truncated,          // file shorter than its header says (or than 8 bytes)
    bad_header,         // header length over the limit, header not an object, entry malformed
    bad_json,           // header or config.json is not valid JSON
    unknown_dtype,      // dtype not in F64 F32 F16 BF16 I64 I32 I8 U8
    bad_shape,          // shape is not a list of non-negative integers
    bad_size,           // data_offsets span differs from prod(shape) × dtype size
    out_of_range,       // data_offsets not inside the data area
    overlap,            // two tensors share bytes
    missing_tensor,     // a tensor the config implies is absent
    unexpected_tensor,  // a tensor the config does not imply is present
    shape_mismatch,     // a tensor's shape differs from what the config implies
    wrong_dtype,        // a tensor has a dtype this use cannot take
    bad_format,         // metadata `format` names another kind of file
    bad_config,         // config.json fails a field, type or range check
    unknown_version,    // format_version this reader does not know
    bad_value,          // a weight that is NaN or infinite
  };

  // what() = "<file>: <message>" (just <message> when file is empty).
  LoadError(Kind kind, std::string file, std::string tensor, const std::string& message);

  Kind kind() const noexcept { return kind_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }  // may be empty

 private:
  Kind kind_;
  std::string file_;
  std::string tensor_;
};

// "truncated", "bad_header", ...: the enumerator's name.
std::string_view to_string(LoadError::Kind kind);

}  // namespace longvq

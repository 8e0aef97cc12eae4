#include "loaders/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "loaders/file_io.h"
#include "loaders/json_util.h"
#include "loaders/load_error.h"
#include "loaders/mapped_files.h"

static_assert(std::endian::native == std::endian::little,
              "the safetensors reader hands out little-endian bytes as they are");

namespace longvq {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr size_t kMaxHeaderDepth = 64;  // our headers nest 3 deep
constexpr size_t kReadAlign = 64;

using K = LoadError::Kind;

[[noreturn]] void fail(K kind, const std::string& file, const std::string& tensor, const std::string& msg) {
  throw LoadError(kind, file, tensor, msg);
}

std::string known_dtypes() { return "F64, F32, F16, BF16, I64, I32, I8, U8"; }

// Validates the header of the whole file [base, base + size) and fills the maps.
// Returns where the data area starts.
size_t parse_file(const std::byte* base, size_t size, const std::string& where,
                  SafetensorsFile::MetadataMap& metadata, SafetensorsFile::TensorMap& tensors) {
  if (size < 8) {
    fail(K::truncated, where, "", "file is " + std::to_string(size) +
         " bytes, too short for a safetensors header; the file is truncated, re-export or re-download it");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    fail(header_len > kMaxHeaderBytes ? K::bad_header : K::truncated, where, "",
         "header length " + std::to_string(header_len) + " does not fit the file (" + std::to_string(size) +
         " bytes); the file is truncated or not safetensors");
  }
  const std::string_view text(reinterpret_cast<const char*>(base + 8), static_cast<size_t>(header_len));
  if (detail::json_depth(text, kMaxHeaderDepth) > kMaxHeaderDepth) {
    fail(K::bad_json, where, "", "header nests deeper than " + std::to_string(kMaxHeaderDepth) +
         " levels, which no safetensors header does; the file is corrupt");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& err) {
    fail(K::bad_json, where, "", std::string("header is not valid JSON (") + err.what() + "); the file is corrupt");
  }
  if (!header.is_object()) {
    fail(K::bad_header, where, "", "header is not a JSON object; the file is corrupt");
  }

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_len = size - data_start;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  spans.reserve(header.size());

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& info = it.value();
    if (name == "__metadata__") {
      if (info.is_null()) continue;
      bool ok = info.is_object();
      if (ok) {
        for (auto m = info.begin(); m != info.end(); ++m) ok = ok && m.value().is_string();
      }
      if (!ok) {
        fail(K::bad_header, where, "", "__metadata__ must map strings to strings, got " + detail::py_repr(info) +
             "; the file is corrupt");
      }
      for (auto m = info.begin(); m != info.end(); ++m) metadata.emplace(m.key(), m.value().get<std::string>());
      continue;
    }
    if (!info.is_object() || info.size() != 3 || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets")) {
      fail(K::bad_header, where, name, "tensor '" + name + "' needs exactly dtype, shape and data_offsets");
    }
    const nlohmann::json& jdtype = info["dtype"];
    std::optional<FileDType> dtype;
    if (jdtype.is_string()) dtype = parse_file_dtype(jdtype.get_ref<const std::string&>());
    if (!dtype) {
      const std::string shown = jdtype.is_string() ? jdtype.get<std::string>() : detail::py_repr(jdtype);
      fail(K::unknown_dtype, where, name, "tensor '" + name + "' has unknown dtype '" + shown + "' (known: " +
           known_dtypes() + ")");
    }

    const nlohmann::json& jshape = info["shape"];
    std::vector<int64_t> shape;
    bool shape_ok = jshape.is_array();
    if (shape_ok) {
      for (const auto& s : jshape) {
        // Non-negative integers only (not true/false, not 2.0); dimensions up to 2^63 - 1.
        if (s.is_number_unsigned() && s.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
          shape.push_back(static_cast<int64_t>(s.get<uint64_t>()));
        } else if (s.is_number_integer() && !s.is_number_unsigned() && s.get<int64_t>() >= 0) {
          shape.push_back(s.get<int64_t>());
        } else {
          shape_ok = false;
          break;
        }
      }
    }
    if (!shape_ok) {
      fail(K::bad_shape, where, name, "tensor '" + name + "' has a bad shape " + detail::py_repr(jshape) +
           " (a shape is a list of non-negative integers); the file is corrupt");
    }

    const nlohmann::json& joff = info["data_offsets"];
    bool off_ok = joff.is_array() && joff.size() == 2 && joff[0].is_number_unsigned() && joff[1].is_number_unsigned();
    uint64_t begin = 0, end = 0;
    if (off_ok) {
      begin = joff[0].get<uint64_t>();
      end = joff[1].get<uint64_t>();
      off_ok = begin <= end && end <= data_len;
    }
    if (!off_ok) {
      fail(K::out_of_range, where, name, "tensor '" + name + "' has data_offsets " + detail::py_repr(joff) +
           " outside the data area of " + std::to_string(data_len) + " bytes; the file is truncated or corrupt");
    }

    // prod(shape) × size with overflow checks; any zero dimension makes the product 0.
    const size_t esize = file_dtype_size(*dtype);
    uint64_t need = 0;
    bool overflow = false;
    if (std::find(shape.begin(), shape.end(), 0) == shape.end()) {
      need = esize;
      for (int64_t dim : shape) overflow = overflow || __builtin_mul_overflow(need, static_cast<uint64_t>(dim), &need);
    }
    const std::string shape_text = detail::py_list_repr(shape) + " " + std::string(file_dtype_name(*dtype));
    if (overflow) {
      fail(K::bad_size, where, name, "tensor '" + name + "' of shape " + shape_text +
           " needs more than 2^64 bytes but its data_offsets span " + std::to_string(end - begin) +
           "; the file is corrupt");
    }
    if (end - begin != need) {
      fail(K::bad_size, where, name, "tensor '" + name + "' of shape " + shape_text + " needs " +
           std::to_string(need) + " bytes but its data_offsets span " + std::to_string(end - begin) +
           "; the file is corrupt");
    }

    TensorInfo t;
    t.dtype = *dtype;
    t.shape = std::move(shape);
    t.data = base + data_start + begin;
    t.nbytes = static_cast<size_t>(need);
    tensors.emplace(name, std::move(t));
    spans.push_back({begin, end, name});
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      fail(K::overlap, where, spans[i - 1].name, "tensors '" + spans[i - 1].name + "' and '" + spans[i].name +
           "' overlap in the data area; the file is corrupt");
    }
  }
  return static_cast<size_t>(data_start);
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

// ---------------------------------------------------------------------------------------------
size_t file_dtype_size(FileDType t) {
  switch (t) {
    case FileDType::F64: return 8;
    case FileDType::F32: return 4;
    case FileDType::F16: return 2;
    case FileDType::BF16: return 2;
    case FileDType::I64: return 8;
    case FileDType::I32: return 4;
    case FileDType::I8: return 1;
    case FileDType::U8: return 1;
  }
  return 0;
}

std::string_view file_dtype_name(FileDType t) {
  switch (t) {
    case FileDType::F64: return "F64";
    case FileDType::F32: return "F32";
    case FileDType::F16: return "F16";
    case FileDType::BF16: return "BF16";
    case FileDType::I64: return "I64";
    case FileDType::I32: return "I32";
    case FileDType::I8: return "I8";
    case FileDType::U8: return "U8";
  }
  return "?";
}

std::optional<FileDType> parse_file_dtype(std::string_view s) {
  for (FileDType t : {FileDType::F64, FileDType::F32, FileDType::F16, FileDType::BF16, FileDType::I64,
                      FileDType::I32, FileDType::I8, FileDType::U8}) {
    if (s == file_dtype_name(t)) return t;
  }
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  // Validated on load: with no zero dimension the product fits (it matched the byte count).
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void detail::FileBytesRelease::operator()(std::byte* p) const noexcept {
  if (p == nullptr) return;
  if (mapped) {
    unregister_mapping(mapping_slot);
    ::munmap(p, size);
  } else {
    ::operator delete[](p, std::align_val_t{kReadAlign});
  }
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path, LoadMode mode)
    : path_(path), mode_(mode) {
  const std::string where = path.string();
  std::string why;
  int err = 0;
  const InputFile file = open_regular_file(path, why, err);
  if (file.fd() < 0) {
    if (err == 0) fail(K::io, where, "", why + "; pass a .safetensors file");
    fail(err == ENOENT ? K::missing_file : K::io, where, "", "cannot open (" + why + "); check the path");
  }
  const int fd = file.fd();
  size_ = file.size();
  if (size_ < 8) {
    parse_file(nullptr, size_, where, metadata_, tensors_);  // throws: too short
  }

  if (mode == LoadMode::mmap) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      fail(K::io, where, "", "cannot mmap " + std::to_string(size_) + " bytes (" + errno_text(errno) +
           "); try LoadMode::read");
    }
    bytes_ = std::unique_ptr<std::byte, Release>(static_cast<std::byte*>(p),
                                                 Release{size_, true, register_mapping(p, size_, where)});
  } else {
    std::byte* p = nullptr;
    try {
      p = static_cast<std::byte*>(::operator new[](size_, std::align_val_t{kReadAlign}));
    } catch (const std::bad_alloc&) {
      fail(K::io, where, "", "cannot allocate " + std::to_string(size_) + " bytes to read the file; try LoadMode::mmap");
    }
    bytes_ = std::unique_ptr<std::byte, Release>(p, Release{size_, false});
    size_t done = 0;
    while (done < size_) {
      const ssize_t n = ::read(fd, p + done, size_ - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(K::io, where, "", "read failed (" + errno_text(errno) + ")");
      }
      if (n == 0) {
        fail(K::truncated, where, "", "file ended after " + std::to_string(done) + " of " + std::to_string(size_) +
             " bytes while reading (did it change on disk?); retry");
      }
      done += static_cast<size_t>(n);
    }
  }
  data_start_ = parse_file(bytes_.get(), size_, where, metadata_, tensors_);
}

SafetensorsFile::SafetensorsFile(std::string_view bytes, const std::string& name) : path_(name), mode_(LoadMode::read) {
  size_ = bytes.size();
  if (size_ < 8) parse_file(nullptr, size_, name, metadata_, tensors_);  // throws: too short
  std::byte* p = static_cast<std::byte*>(::operator new[](size_, std::align_val_t{kReadAlign}));
  bytes_ = std::unique_ptr<std::byte, Release>(p, Release{size_, false});
  std::memcpy(p, bytes.data(), size_);
  data_start_ = parse_file(bytes_.get(), size_, name, metadata_, tensors_);
}

SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) {
    fail(K::missing_tensor, path_.string(), std::string(name),
         "no tensor '" + std::string(name) + "' in this file; check it is the right file");
  }
  return *t;
}

// ---------------------------------------------------------------------------------------------
namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {  // inf / nan
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // ±0
    bits = sign;
  } else {  // subnormal: normalise
    uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

std::vector<float> widen(const TensorInfo& t, const std::string& file, const std::string& name) {
  const size_t n = t.nbytes / file_dtype_size(t.dtype);
  std::vector<float> out(n);
  switch (t.dtype) {
    case FileDType::F32:
      if (n) std::memcpy(out.data(), t.data, n * 4);
      return out;
    case FileDType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, t.data + 2 * i, 2);
        out[i] = std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
      }
      return out;
    case FileDType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, t.data + 2 * i, 2);
        out[i] = half_to_float(v);
      }
      return out;
    default:
      break;
  }
  const std::string label = name.empty() ? "tensor" : "tensor '" + name + "'";
  fail(K::wrong_dtype, file, name, label + " is " + std::string(file_dtype_name(t.dtype)) +
       "; only F32, F16 and BF16 widen to float32");
}

}  // namespace

std::vector<float> to_f32(const TensorInfo& t) { return widen(t, "", ""); }

std::optional<NonFinite> first_non_finite(const TensorInfo& t) {
  auto scan = [](size_t count, auto value_at) -> std::optional<NonFinite> {
    for (size_t i = 0; i < count; ++i)
      if (const float v = value_at(i); !std::isfinite(v)) return NonFinite{i, v};
    return std::nullopt;
  };
  if (t.dtype != FileDType::F32) {
    const std::vector<float> wide = to_f32(t);
    return scan(wide.size(), [&](size_t i) { return wide[i]; });
  }
  return scan(t.nbytes / 4, [&](size_t i) {
    float v;
    std::memcpy(&v, t.data + 4 * i, 4);  // no alignment assumed
    return v;
  });
}

std::vector<float> to_f32(const SafetensorsFile& file, std::string_view name) {
  return widen(file.at(name), file.path().string(), std::string(name));
}

}  // namespace longvq

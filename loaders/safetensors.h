// Reading safetensors files (docs/file-formats.md §1): weights, states and fixtures.
//
//   u64 little-endian H | H bytes of JSON header | data area
//
// SafetensorsFile validates the whole header when it is opened (everything the format page
// lists; a LoadError names the file, the tensor and the fix) and then hands out views into
// the file's bytes: POSIX mmap by default, or a private 64-byte-aligned copy (LoadMode::read).
// Hostile bytes give a LoadError, never a crash: all size arithmetic is checked.
//
// The dtype enum is FileDType, not DType: engine/ops/op.h already declares longvq::DType (the
// engine's tensor types), and both headers must be usable in one translation unit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace longvq {

// The element types a safetensors file can hold (the names are the file's dtype strings).
enum class FileDType { F64, F32, F16, BF16, I64, I32, I8, U8 };

size_t file_dtype_size(FileDType t);                            // bytes per element
std::string_view file_dtype_name(FileDType t);                  // "F32", "BF16", ...
std::optional<FileDType> parse_file_dtype(std::string_view s);  // nullopt for unknown names

// One tensor of an open file. `data` points into the file's bytes (valid while the
// SafetensorsFile lives, also after it is moved); it is not necessarily aligned for the dtype
// when the file comes from another writer, so read through memcpy or to_f32.
struct TensorInfo {
  FileDType dtype = FileDType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;  // product of shape (1 for a scalar)
};

namespace detail {
// Frees a SafetensorsFile's bytes: munmap for a mapping, aligned delete for a read buffer.
struct FileBytesRelease {
  size_t size = 0;
  bool mapped = false;
  int mapping_slot = -1;  // loaders/mapped_files.h
  void operator()(std::byte* p) const noexcept;
};
}  // namespace detail

enum class LoadMode {
  mmap,  // map the file read-only (MAP_PRIVATE); pages load on first touch
  read,  // read the whole file into an owned, 64-byte-aligned buffer
};

class SafetensorsFile {
 public:
  // Opens and validates `path`; throws LoadError. Anything but a regular file (a FIFO, a
  // directory, a device) is refused without blocking or reading it.
  explicit SafetensorsFile(const std::filesystem::path& path, LoadMode mode = LoadMode::mmap);
  // The same from bytes in memory (copied into an aligned buffer; e.g. a state kept in Redis).
  // `name` stands for the path in messages.
  SafetensorsFile(std::string_view bytes, const std::string& name);
  ~SafetensorsFile();

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  using TensorMap = std::map<std::string, TensorInfo, std::less<>>;
  using MetadataMap = std::map<std::string, std::string, std::less<>>;

  const MetadataMap& metadata() const { return metadata_; }  // "__metadata__", may be empty
  const TensorMap& tensors() const { return tensors_; }      // every tensor, by name
  const TensorInfo* find(std::string_view name) const;       // nullptr when absent
  const TensorInfo& at(std::string_view name) const;         // LoadError missing_tensor when absent
  const std::filesystem::path& path() const { return path_; }
  LoadMode mode() const { return mode_; }
  size_t file_size() const { return size_; }
  // The bytes after the header: every tensor's data (what a state file's checksum covers).
  const std::byte* data_area() const { return bytes_.get() + data_start_; }
  size_t data_area_size() const { return size_ - data_start_; }

 private:
  using Release = detail::FileBytesRelease;

  std::filesystem::path path_;
  LoadMode mode_ = LoadMode::mmap;
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::unique_ptr<std::byte, Release> bytes_;
  MetadataMap metadata_;
  TensorMap tensors_;
};

// Widens an F32, F16 or BF16 tensor to float32 (a copy; exact). Other dtypes: LoadError
// wrong_dtype. The second form names the file and tensor in its messages.
std::vector<float> to_f32(const TensorInfo& t);
std::vector<float> to_f32(const SafetensorsFile& file, std::string_view name);

// The first NaN or infinity of an F32, F16 or BF16 tensor (its element index and value), if any.
struct NonFinite {
  size_t index;
  float value;
};
std::optional<NonFinite> first_non_finite(const TensorInfo& t);

}  // namespace longvq

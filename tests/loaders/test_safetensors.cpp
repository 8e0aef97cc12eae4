// SafetensorsFile: a good file read back in both modes, and a catalogue of broken files, each
// refused with the right LoadError kind and message, never a crash.
#include <sys/stat.h>

#include <cmath>
#include <limits>

#include "test_util.h"

using namespace longvq;
using namespace longvq::test;
using K = LoadError::Kind;

namespace {

const LoadMode kModes[] = {LoadMode::mmap, LoadMode::read};

const char* mode_name(LoadMode m) { return m == LoadMode::mmap ? "mmap" : "read"; }

struct BrokenCase {
  const char* label;
  std::string bytes;
  K kind;
  std::string fragment;
  std::string tensor;  // expected LoadError::tensor()
};

// One entry's header text.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

std::vector<BrokenCase> broken_cases() {
  const std::string d8(8, '\x01');
  const std::string d16(16, '\x02');
  std::vector<BrokenCase> c;
  c.push_back({"5 bytes", std::string("\x10\0\0\0\0", 5), K::truncated, "file is 5 bytes, too short", ""});
  c.push_back({"empty file", "", K::truncated, "file is 0 bytes", ""});
  c.push_back({"header length over 100 MiB", u64le(200ull << 20) + "{}      ", K::bad_header,
               "header length 209715200 does not fit the file (16 bytes)", ""});
  c.push_back({"header length 2^64-1 (8 + H overflows)", u64le(~0ull) + "{}      ", K::bad_header,
               "header length 18446744073709551615 does not fit", ""});
  c.push_back({"header past the end of the file", u64le(64) + "{}      ", K::truncated,
               "header length 64 does not fit the file (16 bytes)", ""});
  c.push_back({"header not JSON", raw_file("{\"a\": ", ""), K::bad_json, "header is not valid JSON", ""});
  c.push_back({"header not UTF-8", raw_file("{\"a\xff\": 1}", ""), K::bad_json, "header is not valid JSON", ""});
  c.push_back({"JSON array instead of object", raw_file("[1, 2]", ""), K::bad_header, "header is not a JSON object", ""});
  c.push_back({"JSON number", raw_file("42", ""), K::bad_header, "header is not a JSON object", ""});
  c.push_back({"nested 100000 deep", raw_file(std::string(100000, '[') + std::string(100000, ']'), ""), K::bad_json,
               "nests deeper than 64", ""});
  c.push_back({"entry without data_offsets", raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", d8), K::bad_header,
               "tensor 'w' needs exactly dtype, shape and data_offsets", "w"});
  c.push_back({"entry with an extra key",
               raw_file("{" + entry("w", "\"F32\"", "[2]", "[0,8]").insert(5, "\"x\":1,") + "}", d8),
               K::bad_header, "tensor 'w' needs exactly dtype, shape and data_offsets", "w"});
  c.push_back({"entry not an object", raw_file("{\"w\":[1,2,3]}", d8), K::bad_header,
               "tensor 'w' needs exactly dtype", "w"});
  c.push_back({"unknown dtype", raw_file("{" + entry("w", "\"F8\"", "[8]", "[0,8]") + "}", d8), K::unknown_dtype,
               "tensor 'w' has unknown dtype 'F8' (known: F64, F32, F16, BF16, I64, I32, I8, U8)", "w"});
  c.push_back({"lower-case dtype", raw_file("{" + entry("w", "\"f32\"", "[2]", "[0,8]") + "}", d8), K::unknown_dtype,
               "unknown dtype 'f32'", "w"});
  c.push_back({"dtype not a string", raw_file("{" + entry("w", "4", "[2]", "[0,8]") + "}", d8), K::unknown_dtype,
               "unknown dtype '4'", "w"});
  c.push_back({"negative shape", raw_file("{" + entry("w", "\"F32\"", "[-2]", "[0,8]") + "}", d8), K::bad_shape,
               "tensor 'w' has a bad shape [-2]", "w"});
  c.push_back({"non-integer shape", raw_file("{" + entry("w", "\"F32\"", "[2.0]", "[0,8]") + "}", d8), K::bad_shape,
               "tensor 'w' has a bad shape [2.0]", "w"});
  c.push_back({"boolean shape", raw_file("{" + entry("w", "\"F32\"", "[true]", "[0,8]") + "}", d8), K::bad_shape,
               "bad shape [True]", "w"});
  c.push_back({"shape not a list", raw_file("{" + entry("w", "\"F32\"", "\"2\"", "[0,8]") + "}", d8), K::bad_shape,
               "bad shape '2'", "w"});
  c.push_back({"shape 2^64 - 1", raw_file("{" + entry("w", "\"U8\"", "[18446744073709551615]", "[0,8]") + "}", d8),
               K::bad_shape, "bad shape [18446744073709551615]", "w"});
  c.push_back({"wrong byte count", raw_file("{" + entry("w", "\"F32\"", "[3]", "[0,8]") + "}", d16), K::bad_size,
               "tensor 'w' of shape [3] F32 needs 12 bytes but its data_offsets span 8", "w"});
  c.push_back({"shape [2^62, 4]: byte count overflows",
               raw_file("{" + entry("w", "\"F32\"", "[4611686018427387904,4]", "[0,8]") + "}", d8), K::bad_size,
               "of shape [4611686018427387904, 4] F32 needs more than 2^64 bytes", "w"});
  c.push_back({"shape [2^31, 2^31, 2^31]: element count overflows",
               raw_file("{" + entry("w", "\"U8\"", "[2147483648,2147483648,2147483648]", "[0,8]") + "}", d8),
               K::bad_size, "needs more than 2^64 bytes", "w"});
  c.push_back({"shape [2^62, 2] F32 wraps to 0 in 64 bits",
               raw_file("{" + entry("w", "\"F32\"", "[4611686018427387904,2]", "[0,0]") + "}", d8), K::bad_size,
               "needs more than 2^64 bytes but its data_offsets span 0", "w"});
  c.push_back({"offsets past the data area", raw_file("{" + entry("w", "\"F32\"", "[4]", "[0,16]") + "}", d8),
               K::out_of_range, "tensor 'w' has data_offsets [0, 16] outside the data area of 8 bytes", "w"});
  c.push_back({"offsets reversed", raw_file("{" + entry("w", "\"F32\"", "[1]", "[8,4]") + "}", d8), K::out_of_range,
               "data_offsets [8, 4] outside", "w"});
  c.push_back({"negative offset", raw_file("{" + entry("w", "\"F32\"", "[1]", "[-4,0]") + "}", d8), K::out_of_range,
               "data_offsets [-4, 0] outside", "w"});
  c.push_back({"offsets 2^64-1", raw_file("{" + entry("w", "\"F32\"", "[1]", "[18446744073709551615,3]") + "}", d8),
               K::out_of_range, "outside the data area", "w"});
  c.push_back({"three offsets", raw_file("{" + entry("w", "\"F32\"", "[1]", "[0,4,8]") + "}", d8), K::out_of_range,
               "data_offsets [0, 4, 8] outside", "w"});
  c.push_back({"offsets not integers", raw_file("{" + entry("w", "\"F32\"", "[1]", "[0.0,4]") + "}", d8),
               K::out_of_range, "data_offsets [0.0, 4] outside", "w"});
  c.push_back({"overlapping tensors",
               raw_file("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," + entry("b", "\"F32\"", "[2]", "[4,12]") + "}",
                        d16),
               K::overlap, "tensors 'a' and 'b' overlap in the data area", "a"});
  c.push_back({"identical ranges",
               raw_file("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," + entry("b", "\"I32\"", "[2]", "[0,8]") + "}",
                        d16),
               K::overlap, "tensors 'a' and 'b' overlap", "a"});
  c.push_back({"metadata not an object", raw_file("{\"__metadata__\":[1]}", ""), K::bad_header,
               "__metadata__ must map strings to strings", ""});
  c.push_back({"metadata value not a string", raw_file("{\"__metadata__\":{\"format\":1}}", ""), K::bad_header,
               "__metadata__ must map strings to strings, got {'format': 1}", ""});
  return c;
}

}  // namespace

TEST_CASE("broken safetensors files are refused with the right kind and message", "[safetensors]") {
  TempDir tmp;
  const auto path = tmp / "broken.safetensors";
  for (const auto& c : broken_cases()) {
    write_file(path, c.bytes);
    for (LoadMode mode : kModes) {
      INFO("case: " << c.label << ", mode " << mode_name(mode));
      const LoadError e = catch_load_error([&] { SafetensorsFile f(path, mode); });
      INFO("message: " << e.what());
      CHECK(to_string(e.kind()) == to_string(c.kind));
      CHECK(contains(e.what(), c.fragment));
      CHECK(std::string(e.what()).rfind(path.string() + ": ", 0) == 0);  // names the file first
      CHECK(e.file() == path.string());
      CHECK(e.tensor() == c.tensor);
    }
  }
}

TEST_CASE("a good file reads back in both modes", "[safetensors]") {
  TempDir tmp;
  const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  const std::vector<double> f64 = {3.141592653589793, -1e300};
  const std::vector<int64_t> i64 = {-(int64_t(1) << 62)};
  const std::vector<int32_t> i32 = {7, -8, 9, 2147483647};
  const std::vector<uint8_t> u8 = {0, 128, 255};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000, 0x3555};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC0A0};
  const std::vector<float> scalar = {42.0f};
  const auto path = tmp / "good.safetensors";
  write_file(path, make_file({{"f32", "F32", {2, 3}, bytes_of(f32)},
                              {"f64", "F64", {2}, bytes_of(f64)},
                              {"i64", "I64", {1}, bytes_of(i64)},
                              {"i32", "I32", {2, 2}, bytes_of(i32)},
                              {"u8", "U8", {3}, bytes_of(u8)},
                              {"f16", "F16", {7}, bytes_of(f16)},
                              {"bf16", "BF16", {1, 2}, bytes_of(bf16)},
                              {"empty", "F32", {0, 5}, ""},
                              {"scalar", "F32", {}, bytes_of(scalar)}},
                             {{"format", "test"}, {"note", "ünïcode"}}));
  for (LoadMode mode : kModes) {
    INFO("mode " << mode_name(mode));
    SafetensorsFile f(path, mode);
    CHECK(f.mode() == mode);
    CHECK(f.path() == path);
    CHECK(f.tensors().size() == 9);
    CHECK(f.metadata().at("format") == "test");
    CHECK(f.metadata().at("note") == "ünïcode");

    const TensorInfo& t = f.at("f32");
    CHECK(t.dtype == FileDType::F32);
    CHECK(t.shape == std::vector<int64_t>{2, 3});
    CHECK(t.numel() == 6);
    CHECK(t.nbytes == 24);
    CHECK(std::memcmp(t.data, f32.data(), 24) == 0);
    CHECK(to_f32(t) == f32);
    CHECK(std::memcmp(f.at("f64").data, f64.data(), 16) == 0);
    CHECK(std::memcmp(f.at("i64").data, i64.data(), 8) == 0);
    CHECK(std::memcmp(f.at("i32").data, i32.data(), 16) == 0);
    CHECK(std::memcmp(f.at("u8").data, u8.data(), 3) == 0);
    CHECK(f.at("empty").nbytes == 0);
    CHECK(f.at("empty").numel() == 0);
    CHECK(f.at("scalar").shape.empty());
    CHECK(f.at("scalar").numel() == 1);
    CHECK(to_f32(f, "scalar") == scalar);

    // Our writer's order keeps every tensor naturally aligned (the file page promises it).
    for (const auto& [name, info] : f.tensors()) {
      INFO(name);
      CHECK(reinterpret_cast<uintptr_t>(info.data) % file_dtype_size(info.dtype) == 0);
    }

    const std::vector<float> h = to_f32(f.at("f16"));
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(h[2] == 65504.0f);
    CHECK(h[3] == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(std::isinf(h[4]));
    CHECK((h[5] == 0.0f && std::signbit(h[5])));
    CHECK(h[6] == 0.333251953125f);
    CHECK(to_f32(f.at("bf16")) == std::vector<float>{1.0f, -5.0f});

    CHECK(f.find("nope") == nullptr);
    const LoadError e = catch_load_error([&] { (void)f.at("nope"); });
    CHECK(e.kind() == K::missing_tensor);
    CHECK(e.tensor() == "nope");
    const LoadError w = catch_load_error([&] { (void)to_f32(f, "i32"); });
    CHECK(w.kind() == K::wrong_dtype);
    CHECK(contains(w.what(), "tensor 'i32' is I32; only F32, F16 and BF16 widen to float32"));

    // Moving keeps the views valid: the bytes do not move.
    const std::byte* before = f.at("f32").data;
    SafetensorsFile moved(std::move(f));
    CHECK(moved.at("f32").data == before);
    CHECK(to_f32(moved.at("f32")) == f32);
    SafetensorsFile assigned(path, mode);
    assigned = std::move(moved);
    CHECK(to_f32(assigned.at("f32")) == f32);
  }
}

TEST_CASE("an empty header and a file without metadata are fine", "[safetensors]") {
  TempDir tmp;
  const auto path = tmp / "empty.safetensors";
  write_file(path, raw_file("{}", ""));
  for (LoadMode mode : kModes) {
    SafetensorsFile f(path, mode);
    CHECK(f.tensors().empty());
    CHECK(f.metadata().empty());
  }
  // A zero dimension makes the tensor empty, whatever the other dimensions (numpy's prod is 0).
  write_file(path, raw_file("{\"z\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4,0],\"data_offsets\":[0,0]}}", ""));
  for (LoadMode mode : kModes) {
    SafetensorsFile f(path, mode);
    CHECK(f.at("z").nbytes == 0);
    CHECK(f.at("z").numel() == 0);
  }
  // Trailing bytes after the last tensor and gaps are allowed, as in the Python reader.
  write_file(path, raw_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", "xxxxabyyyy"));
  for (LoadMode mode : kModes) {
    SafetensorsFile f(path, mode);
    CHECK(std::string(reinterpret_cast<const char*>(f.at("a").data), 2) == "ab");
  }
}

TEST_CASE("missing files and directories give io-kind errors", "[safetensors]") {
  TempDir tmp;
  for (LoadMode mode : kModes) {
    const LoadError e = catch_load_error([&] { SafetensorsFile f(tmp / "absent.safetensors", mode); });
    CHECK(e.kind() == K::missing_file);
    CHECK(contains(e.what(), "cannot open"));
    const LoadError d = catch_load_error([&] { SafetensorsFile f(tmp.path(), mode); });
    CHECK(d.kind() == K::io);
    CHECK(contains(d.what(), "is a directory, not a regular file"));
  }
  // A FIFO with no writer (a blocking open would wait forever) and a device that never ends.
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0644) == 0);
  for (const fs::path& p : {tmp / "fifo", fs::path("/dev/zero")})
    for (LoadMode mode : kModes) {
      const LoadError e = catch_load_error([&] { SafetensorsFile f(p, mode); });
      CHECK(e.kind() == K::io);
      CHECK(contains(e.what(), "not a regular file"));
    }
}

TEST_CASE("hostile bytes never crash the reader", "[safetensors]") {
  // Every truncation and many random corruptions of a good file: each either loads or throws
  // a LoadError (any other exception fails the test; a crash fails the run).
  TempDir tmp;
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<int32_t> b = {5, 6};
  const std::string good = make_file({{"alpha", "F32", {2, 2}, bytes_of(a)}, {"beta", "I32", {2}, bytes_of(b)}},
                                     {{"format", "longvq-model"}});
  const auto path = tmp / "fuzz.safetensors";
  int loaded = 0, refused = 0;
  auto attempt = [&](const std::string& bytes, LoadMode mode) {
    write_file(path, bytes);
    try {
      SafetensorsFile f(path, mode);
      for (const auto& [name, t] : f.tensors()) {
        // Views stay inside the file.
        CHECK(t.nbytes <= f.file_size());
        if (t.nbytes) {
          volatile std::byte last = t.data[t.nbytes - 1];
          (void)last;
        }
      }
      ++loaded;
    } catch (const LoadError&) {
      ++refused;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n), LoadMode::read);
  std::mt19937 rng(1234);
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  const size_t header_end = 8 + static_cast<size_t>(header_len);
  const char interesting[] = "{}[],:\"0123456789-.eE \\ufx";
  for (int iter = 0; iter < 1500; ++iter) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = rng() % header_end;
      bytes[pos] = (rng() % 2) ? static_cast<char>(rng() & 0xff) : interesting[rng() % (sizeof interesting - 1)];
    }
    attempt(bytes, iter % 2 ? LoadMode::mmap : LoadMode::read);
  }
  CHECK(refused > 0);
  CHECK(loaded + refused == static_cast<int>(good.size()) + 1500);
}

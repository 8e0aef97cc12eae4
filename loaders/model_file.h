// A model directory (docs/file-formats.md §2): config.json + model.safetensors, validated
// against each other as the Python load_model does (tools/longvq_ref/export.py).
#pragma once

#include <filesystem>

#include "loaders/config.h"
#include "loaders/safetensors.h"

namespace longvq {

inline constexpr const char* kModelFormat = "longvq-model";

struct ModelFile {
  ModelConfig config;
  SafetensorsFile weights;  // every tensor of expected_tensors(config), exactly, F32, BF16 or I8 (+ scales)
};

// int8 weight matrices (export convert --int8; docs/file-formats.md §2): a 2-D "*.weight" tensor
// NAME [out, in] stored as I8, with its scales NAME + "_scales", F16 [out, ceil(in / 32)]: one
// per block of kInt8Block consecutive inputs of an output row (the last block of a row may be
// shorter). Value = float(int8) · float(scale).
inline constexpr int64_t kInt8Block = 32;
inline constexpr const char* kInt8ScalesSuffix = "_scales";
// The scales of the I8 tensor `name`, or nullptr when `name` is not I8 (or they are missing).
const TensorInfo* int8_scales(const SafetensorsFile& weights, const std::string& name);
// Whether `name` is the scales tensor of an I8 tensor of the file.
bool is_int8_scales(const SafetensorsFile& weights, const std::string& name);

// Loads `dir`/config.json, then `dir`/model.safetensors, and checks: metadata `format` is
// "longvq-model" (and `format_version` matches config.json) where present; every tensor of
// expected_tensors(config) is present with exactly its shape; no other tensor but the scales of
// I8 matrices; dtypes F32 or BF16, or I8 for 2-D "*.weight" matrices with F16 scales of the
// right shape; no NaN or infinity. Throws LoadError naming the file, the tensor and the fix.
ModelFile load_model_dir(const std::filesystem::path& dir, LoadMode mode = LoadMode::mmap);

// The same checks on an already opened pair (used by load_model_dir).
void check_model_weights(const ModelConfig& config, const SafetensorsFile& weights);

}  // namespace longvq

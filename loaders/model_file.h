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
  SafetensorsFile weights;  // every tensor of expected_tensors(config), exactly, F32 or BF16
};

// Loads `dir`/config.json, then `dir`/model.safetensors, and checks: metadata `format` is
// "longvq-model" (and `format_version` matches config.json) where present; every tensor of
// expected_tensors(config) is present with exactly its shape; no other tensor; dtypes F32 or
// BF16. Throws LoadError naming the file, the tensor and the fix.
ModelFile load_model_dir(const std::filesystem::path& dir, LoadMode mode = LoadMode::mmap);

// The same checks on an already opened pair (used by load_model_dir).
void check_model_weights(const ModelConfig& config, const SafetensorsFile& weights);

}  // namespace longvq

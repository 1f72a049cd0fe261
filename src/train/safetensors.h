// The safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian tensor bytes. Reading checks
// every offset and size against the file, so a truncated or hostile file
// gives an error naming it instead of a crash.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mixseg {

struct SafeTensor {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
  size_t numel() const;
};

struct SafeTensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensor> tensors;
};

// Written atomically (temp file, fsync, rename).
void write_safetensors(const std::string& path, const SafeTensorsFile& f);
SafeTensorsFile read_safetensors(const std::string& path);
// Only the header's "__metadata__" (reads the header, not the tensor data).
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
// The same from bytes in memory (path only names the source in errors).
SafeTensorsFile parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& path);

SafeTensor f32_tensor(const float* data, std::vector<int64_t> shape);

}  // namespace mixseg

// NumPy .npy files (format version 1.0, C order, little-endian) of int8,
// uint8 or float32: how `mixseg infer` exchanges raw tensors with Python
// runtimes and users' scripts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixseg {

struct NpyArray {
  std::string dtype;  // "i1", "u1" or "f4"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // raw little-endian elements
  size_t numel() const;
};

// Throws naming the file for anything else (Fortran order, other dtypes, a
// size that does not match the shape).
NpyArray read_npy(const std::string& path);
// The same from the file's bytes (path only names the source in errors).
NpyArray parse_npy(const std::vector<uint8_t>& bytes, const std::string& path);
void write_npy(const std::string& path, const NpyArray& a);

}  // namespace mixseg

// Reading and writing .npy files (npy.h).
#include "data/npy.h"

#include <fmt/format.h>

#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/file_util.h"
#include "core/shape_check.h"

namespace mixseg {

namespace {

size_t item_size(const std::string& dtype) {
  if (dtype == "i1" || dtype == "u1") return 1;
  if (dtype == "f4") return 4;
  fail("npy dtype {} is not supported (int8, uint8 or float32)", dtype);
}

}  // namespace

size_t NpyArray::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

NpyArray read_npy(const std::string& path) {
  return parse_npy(read_file_bytes(path), path);
}

NpyArray parse_npy(const std::vector<uint8_t>& bytes, const std::string& path) {
  if (bytes.size() < 10 || std::string(bytes.begin(), bytes.begin() + 6) != "\x93NUMPY")
    fail("{}: not a .npy file", path);
  const int major = bytes[6];
  const size_t len_bytes = major == 1 ? 2 : 4, start = 8 + len_bytes;
  if (major < 1 || major > 3 || bytes.size() < start) fail("{}: unsupported .npy version {}", path, major);
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= size_t(bytes[8 + i]) << (8 * i);
  if (bytes.size() < start + header_len) fail("{}: truncated .npy header", path);
  const std::string header(bytes.begin() + long(start), bytes.begin() + long(start + header_len));
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<|>])([a-z][0-9]+)'")))
    fail("{}: .npy header without a dtype: {}", path, header);
  NpyArray a;
  a.dtype = m[2];
  if (m[1] == ">" && a.dtype != "i1" && a.dtype != "u1") fail("{}: big-endian .npy data is not supported", path);
  const size_t isz = item_size(a.dtype);
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True"))) fail("{}: Fortran-order .npy is not supported", path);
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([0-9,\\s]*)\\)"))) fail("{}: .npy header without a shape", path);
  const std::string dims = m[1];
  const std::regex number("[0-9]+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    const std::string d = it->str();
    if (d.size() > 15) fail("{}: .npy dimension {} is too large", path, d);
    a.shape.push_back(std::stoll(d));
  }
  const std::optional<size_t> numel = checked_numel(a.shape, size_t(1) << 40);
  if (!numel) fail("{}: .npy shape has too many elements: {}", path, dims);
  const size_t want = *numel * isz, have = bytes.size() - start - header_len;
  if (have != want) fail("{}: .npy data has {} bytes, its shape needs {}", path, have, want);
  a.data.assign(bytes.begin() + long(start + header_len), bytes.end());
  return a;
}

void write_npy(const std::string& path, const NpyArray& a) {
  const size_t isz = item_size(a.dtype);
  if (a.data.size() != a.numel() * isz) fail("internal: npy data size does not match its shape");
  std::string shape;
  for (size_t i = 0; i < a.shape.size(); ++i) shape += fmt::format("{}{}", i ? ", " : "", a.shape[i]);
  if (a.shape.size() == 1) shape += ",";  // "(3,)"
  std::string header = fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': ({}), }}",
                                   isz == 1 ? "|" : "<", a.dtype, shape);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const uint16_t len = uint16_t(header.size());
    const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
    f.write(len_bytes, 2);
    f.write(header.data(), std::streamsize(header.size()));
    f.write(reinterpret_cast<const char*>(a.data.data()), std::streamsize(a.data.size()));
    f.close();
    if (!f) fail("{}: cannot write", path);
  });
}

}  // namespace mixseg

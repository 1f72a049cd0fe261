// safetensors reader and writer (see safetensors.h).
#include "train/safetensors.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "core/shape_check.h"

namespace mixseg {

using nlohmann::json;

size_t SafeTensor::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

SafeTensor f32_tensor(const float* data, std::vector<int64_t> shape) {
  SafeTensor t;
  t.dtype = DType::f32;
  t.shape = std::move(shape);
  t.data.resize(t.numel() * 4);
  if (!t.data.empty()) std::memcpy(t.data.data(), data, t.data.size());
  return t;
}

void write_safetensors(const std::string& path, const SafeTensorsFile& f) {
  json header = json::object();
  if (!f.metadata.empty()) header["__metadata__"] = f.metadata;
  size_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    if (t.data.size() != t.numel() * size_t(dtype_size(t.dtype)))
      fail("{}: tensor {} has {} bytes for {} elements", path, name, t.data.size(), t.numel());
    header[name] = {{"dtype", traits(t.dtype).safetensors_name},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data to 8 bytes
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail("{}: cannot open for writing", tmp);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(h.data(), std::streamsize(h.size()));
    for (const auto& [name, t] : f.tensors) out.write(reinterpret_cast<const char*>(t.data.data()), std::streamsize(t.data.size()));
    out.flush();
    if (!out) fail("{}: write failed (disk full?)", path);
  });
}

SafeTensorsFile parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& path) {
  if (bytes.size() < 8) fail("{}: not a safetensors file (only {} bytes)", path, bytes.size());
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= uint64_t(bytes[i]) << (8 * i);
  if (hlen > bytes.size() - 8 || hlen > (uint64_t(100) << 20))
    fail("{}: not a safetensors file (header length {} does not fit the file of {} bytes)", path, hlen, bytes.size());
  const size_t data_begin = 8 + hlen, data_size = bytes.size() - data_begin;
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + long(data_begin));
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON ({})", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);
  SafeTensorsFile f;
  try {
    for (const auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        for (const auto& [k, s] : v.items()) f.metadata[k] = s.get<std::string>();
        continue;
      }
      SafeTensor t;
      t.dtype = parse_dtype(v.at("dtype").get<std::string>());
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      const std::optional<size_t> count = checked_numel(t.shape, size_t(1) << 40);
      if (!count) fail("{}: tensor {} has a negative dimension or too many elements", path, name);
      const size_t numel = *count;
      const auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        fail("{}: tensor {} has data offsets outside the file's {} data bytes", path, name, data_size);
      if (off[1] - off[0] != numel * size_t(dtype_size(t.dtype)))
        fail("{}: tensor {} has {} bytes for shape of {} {} elements", path, name, off[1] - off[0], numel,
             dtype_name(t.dtype));
      t.data.assign(bytes.begin() + long(data_begin + off[0]), bytes.begin() + long(data_begin + off[1]));
      f.tensors.emplace(name, std::move(t));
    }
  } catch (const json::exception& e) {
    fail("{}: malformed safetensors header ({})", path, e.what());
  }
  return f;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  check_readable_file(path);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("{}: cannot open", path);
  const uint64_t file_size = uint64_t(in.tellg());
  in.seekg(0);
  uint8_t len[8] = {};
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len), 8))
    fail("{}: not a safetensors file (only {} bytes)", path, file_size);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= uint64_t(len[i]) << (8 * i);
  if (hlen > file_size - 8 || hlen > (uint64_t(100) << 20))
    fail("{}: not a safetensors file (header length {} does not fit the file of {} bytes)", path, hlen, file_size);
  std::string text(hlen, '\0');
  if (!in.read(text.data(), std::streamsize(hlen))) fail("{}: cannot read the safetensors header", path);
  std::map<std::string, std::string> metadata;
  try {
    const json header = json::parse(text);
    if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);
    if (header.contains("__metadata__"))
      for (const auto& [k, v] : header.at("__metadata__").items()) metadata[k] = v.get<std::string>();
  } catch (const json::exception& e) {
    fail("{}: malformed safetensors header ({})", path, e.what());
  }
  return metadata;
}

SafeTensorsFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file_bytes(path), path);
}

}  // namespace mixseg

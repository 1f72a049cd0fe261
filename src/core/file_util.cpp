// Reading whole files and atomic file writing (see file_util.h).
#include "core/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace mixseg {

namespace fs = std::filesystem;

namespace {
void fsync_path(const std::string& path, bool dir) {
  const int fd = ::open(path.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) fail("{}: cannot open to sync ({})", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !dir) fail("{}: fsync failed ({})", path, std::strerror(err));
}
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_for_reading(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  // not_found only: a status that could not be read (a folder above it not
  // searchable) is left to fopen, whose error then says why.
  if (st.type() == fs::file_type::not_found) fail("{}: no such file", path);
  if (fs::is_directory(st)) fail("{}: is a folder, not a file", path);
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) fail("{}: cannot open ({})", path, std::strerror(errno));
  return f;
}

// Appends the rest of f to out, in chunks (a pipe has no size to ask for).
template <class Bytes>
void read_all(std::FILE* f, const std::string& path, Bytes& out) {
  constexpr size_t kChunk = size_t(1) << 20;
  for (;;) {
    const size_t have = out.size();
    out.resize(have + kChunk);
    const size_t got = std::fread(out.data() + have, 1, kChunk, f);
    out.resize(have + got);
    if (got < kChunk) break;
  }
  if (std::ferror(f)) fail("{}: read error ({})", path, std::strerror(errno));
}

}  // namespace

void check_readable_file(const std::string& path) { open_for_reading(path); }

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  const File f = open_for_reading(path);
  std::vector<uint8_t> bytes;
  read_all(f.get(), path, bytes);
  return bytes;
}

std::string read_file_text(const std::string& path) {
  const File f = open_for_reading(path);
  std::string text;
  read_all(f.get(), path, text);
  return text;
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) fail("{}: folder {} does not exist", path, dir.string());
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  try {
    write(tmp);
    fsync_path(tmp, false);
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail("{}: cannot rename the finished temporary file into place ({})", path, ec.message());
    fsync_path(dir.string(), true);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("{}: cannot create output folder ({})", dir, ec ? ec.message() : "not a folder");
  if (::access(dir.c_str(), W_OK) != 0) fail("{}: output folder is not writable", dir);
}

}  // namespace mixseg

// Atomic file writing (see file_util.h).
#include "core/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

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
}  // namespace

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

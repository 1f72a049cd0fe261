// Available host memory (see host_memory.h).
#include "core/host_memory.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

namespace mixseg {

namespace {

std::string file_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The files holding this process's group limit and use: cgroup v2
// ("0::/PATH" in /proc/self/cgroup) or v1's memory controller
// ("N:memory:/PATH"); empty when there is neither.
std::pair<std::string, std::string> cgroup_files() {
  std::istringstream lines(file_text("/proc/self/cgroup"));
  std::pair<std::string, std::string> v2;
  for (std::string line; std::getline(lines, line);) {
    const size_t colon = line.find(':'), second = line.find(':', colon + 1);
    if (colon == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(colon + 1, second - colon - 1), path = line.substr(second + 1);
    if (controllers == "memory")
      return {"/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes",
              "/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes"};
    if (controllers.empty())
      v2 = {"/sys/fs/cgroup" + path + "/memory.max", "/sys/fs/cgroup" + path + "/memory.current"};
  }
  return v2;
}

}  // namespace

size_t available_memory_bytes(const std::string& meminfo, const std::string& cgroup_max,
                              const std::string& cgroup_current) {
  size_t available = 0;
  std::istringstream in(meminfo);
  std::string key, unit;
  size_t kib = 0;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") available = kib * 1024;
  // A group limit ("max" or missing: none) leaves limit - current to use.
  size_t limit = 0, current = 0;
  if (std::istringstream(cgroup_max) >> limit) {
    std::istringstream(cgroup_current) >> current;
    const size_t left = limit > current ? limit - current : 0;
    available = available == 0 ? left : std::min(available, left);
  }
  return available;
}

size_t available_memory_bytes() {
  const auto [limit, current] = cgroup_files();
  return available_memory_bytes(file_text("/proc/meminfo"), limit.empty() ? "" : file_text(limit),
                                limit.empty() ? "" : file_text(current));
}

}  // namespace mixseg

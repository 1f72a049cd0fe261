// Host memory the process can still use: what `--stream-data auto` weighs a
// data set against. Linux's MemAvailable (free memory plus what the kernel
// can reclaim without swapping), capped by the memory limit of the
// process's cgroup (v2, or v1's memory controller): a container's limit,
// which MemAvailable does not show; a set loaded past it gets the process
// killed, not an error.
#pragma once
#include <cstddef>
#include <string>

namespace mixseg {

// Bytes available now; 0 when nothing can be read (not Linux).
size_t available_memory_bytes();

// The same from the texts of /proc/meminfo, the group's limit (v2
// memory.max: "max" or bytes; v1 memory.limit_in_bytes; empty: no group)
// and its use (memory.current, memory.usage_in_bytes).
size_t available_memory_bytes(const std::string& meminfo, const std::string& cgroup_max,
                              const std::string& cgroup_current);

}  // namespace mixseg

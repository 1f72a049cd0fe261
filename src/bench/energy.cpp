// RAPL and NVML energy counters (energy.h).
#include "bench/energy.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace mixseg {

namespace fs = std::filesystem;

uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t range) {
  if (after >= before) return after - before;
  return range > before ? (range - before) + after : after;  // wrapped once (a range below `before` is a bad file)
}

namespace {

bool read_u64(const fs::path& p, uint64_t* v) {
  std::ifstream f(p);
  return static_cast<bool>(f >> *v);
}

class RaplCounter : public EnergyCounter {
 public:
  struct Zone {
    fs::path energy;
    uint64_t range = 0, last = 0;
  };
  explicit RaplCounter(std::vector<Zone> zones) : zones_(std::move(zones)) {}
  std::string source() const override { return "rapl"; }
  std::string domain() const override {
    return fmt::format("{} CPU package{} (RAPL; DRAM not included)", zones_.size(), zones_.size() == 1 ? "" : "s");
  }
  double joules() override {
    for (Zone& z : zones_) {
      uint64_t now = 0;
      if (!read_u64(z.energy, &now)) continue;  // a transient read failure: count it at the next reading
      total_uj_ += counter_delta(z.last, now, z.range);
      z.last = now;
    }
    return double(total_uj_) * 1e-6;
  }

 private:
  std::vector<Zone> zones_;
  uint64_t total_uj_ = 0;
};

// NVML through dlopen: the few entry points used, declared by hand.
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct Nvml {
  void* lib = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*handle)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*energy)(nvmlDevice_t, unsigned long long*) = nullptr;  // millijoules since the driver loaded
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  struct Memory {
    unsigned long long total, free, used;
  };
  nvmlReturn_t (*memory)(nvmlDevice_t, Memory*) = nullptr;
  bool ok = false;
  std::string why;
};

const Nvml& nvml() {
  static const Nvml n = [] {
    Nvml r;
    r.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!r.lib) {
      r.why = "no NVIDIA driver library (libnvidia-ml.so.1)";
      return r;
    }
    auto sym = [&](const char* name) { return dlsym(r.lib, name); };
    r.init = reinterpret_cast<nvmlReturn_t (*)()>(sym("nvmlInit_v2"));
    r.handle = reinterpret_cast<nvmlReturn_t (*)(unsigned, nvmlDevice_t*)>(sym("nvmlDeviceGetHandleByIndex_v2"));
    r.energy = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
    r.temperature = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*)>(sym("nvmlDeviceGetTemperature"));
    r.clock = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*)>(sym("nvmlDeviceGetClockInfo"));
    r.memory = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, Nvml::Memory*)>(sym("nvmlDeviceGetMemoryInfo"));
    if (!r.init || !r.handle || !r.energy) {
      r.why = "libnvidia-ml.so.1 lacks the total-energy entry points";
      return r;
    }
    if (r.init() != 0) {
      r.why = "nvmlInit failed (no GPU or driver not loaded)";
      return r;
    }
    r.ok = true;
    return r;
  }();
  return n;
}

class NvmlCounter : public EnergyCounter {
 public:
  NvmlCounter(nvmlDevice_t d, int index, unsigned long long first_mj) : dev_(d), index_(index), last_(first_mj) {}
  std::string source() const override { return "nvml"; }
  std::string domain() const override { return fmt::format("GPU {} board (NVML total energy)", index_); }
  double joules() override {
    unsigned long long now = 0;
    if (nvml().energy(dev_, &now) == 0 && now >= last_) {
      total_mj_ += now - last_;
      last_ = now;
    }
    return double(total_mj_) * 1e-3;
  }

 private:
  nvmlDevice_t dev_;
  int index_;
  unsigned long long last_, total_mj_ = 0;
};

}  // namespace

std::unique_ptr<EnergyCounter> open_rapl(const std::string& root, std::string* why) {
  std::vector<RaplCounter::Zone> zones;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    *why = fmt::format("no powercap interface ({} absent: not Linux on bare metal, or RAPL not exposed)", root);
    return nullptr;
  }
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root, ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  bool unreadable = false;
  for (const fs::path& d : dirs) {
    const std::string name = d.filename().string();
    // Top-level zones only ("intel-rapl:0", not the sub-zone "intel-rapl:0:0"), and packages only.
    if (name.rfind("intel-rapl:", 0) != 0 || std::count(name.begin(), name.end(), ':') != 1) continue;
    std::ifstream nf(d / "name");
    std::string zone_name;
    if (!(nf >> zone_name) || zone_name.rfind("package", 0) != 0) continue;
    RaplCounter::Zone z{d / "energy_uj", 0, 0};
    if (!read_u64(d / "max_energy_range_uj", &z.range) || !read_u64(z.energy, &z.last)) {
      unreadable = true;
      continue;
    }
    zones.push_back(z);
  }
  if (zones.empty()) {
    *why = unreadable ? fmt::format("RAPL zones under {} are not readable (energy_uj is root-only on recent kernels)", root)
                      : fmt::format("no RAPL package zones under {}", root);
    return nullptr;
  }
  return std::make_unique<RaplCounter>(std::move(zones));
}

std::unique_ptr<EnergyCounter> open_nvml(int index, std::string* why) {
  const Nvml& n = nvml();
  if (!n.ok) {
    *why = n.why;
    return nullptr;
  }
  nvmlDevice_t d = nullptr;
  unsigned long long first = 0;
  if (n.handle(unsigned(index), &d) != 0) {
    *why = fmt::format("NVML has no GPU {}", index);
    return nullptr;
  }
  if (n.energy(d, &first) != 0) {
    *why = fmt::format("GPU {} has no total-energy counter (needs Volta or newer)", index);
    return nullptr;
  }
  return std::make_unique<NvmlCounter>(d, index, first);
}

GpuState read_gpu_state(int index) {
  GpuState s;
  const Nvml& n = nvml();
  nvmlDevice_t d = nullptr;
  if (!n.ok || n.handle(unsigned(index), &d) != 0) return s;
  unsigned v = 0;
  if (n.temperature && n.temperature(d, 0 /* NVML_TEMPERATURE_GPU */, &v) == 0) s.temperature_c = v;
  if (n.clock && n.clock(d, 1 /* NVML_CLOCK_SM */, &v) == 0) s.sm_clock_mhz = v;
  Nvml::Memory m{};
  if (n.memory && n.memory(d, &m) == 0) s.memory_used_mib = unsigned(m.used >> 20);
  return s;
}

}  // namespace mixseg

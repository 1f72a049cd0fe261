// A stand-in for the NVIDIA driver's libnvidia-ml.so.1, built as that file
// name for the emulated GPU's tests (LD_LIBRARY_PATH), so `mixseg bench
// --device cuda` reads energy, temperature, clocks and memory through the
// same dlopen'ed entry points it uses on a GPU (src/bench/energy.cpp).
//
// Its board draws 50 W idle plus 200 W per busy CPU core of the process
// (getrusage): the emulated GPU's work is the process's CPU time, so a
// benchmark's net joules come out positive and an idle baseline near 50 W.
// Like the real counter, the energy (millijoules, monotonic) moves in steps
// (every 100 ms), which is why mixseg measures energy over windows of 2 s.
#include <sys/resource.h>

#include <chrono>
#include <cstring>

namespace {

using Clock = std::chrono::steady_clock;
Clock::time_point g_start;
unsigned long long g_reported_mj = 0;
Clock::time_point g_reported_at;
int g_device = 0;  // the handle points here

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

extern "C" {

int nvmlInit_v2() {
  g_start = g_reported_at = Clock::now();
  g_reported_mj = 1000000;  // joules since the driver loaded: not zero
  return 0;
}

int nvmlShutdown() { return 0; }

int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (index != 0) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &g_device;
  return 0;
}

int nvmlDeviceGetTotalEnergyConsumption(void*, unsigned long long* mj) {
  const Clock::time_point now = Clock::now();
  if (now - g_reported_at >= std::chrono::milliseconds(100)) {
    const double wall = std::chrono::duration<double>(now - g_start).count();
    g_reported_mj = 1000000 + (unsigned long long)(1e3 * (50.0 * wall + 200.0 * cpu_seconds()));
    g_reported_at = now;
  }
  *mj = g_reported_mj;
  return 0;
}

int nvmlDeviceGetTemperature(void*, int, unsigned* celsius) {
  *celsius = 47;
  return 0;
}

int nvmlDeviceGetClockInfo(void*, int, unsigned* mhz) {
  *mhz = 1980;
  return 0;
}

struct Memory {
  unsigned long long total, free, used;
};
int nvmlDeviceGetMemoryInfo(void*, Memory* m) {
  m->total = 1ull << 37;
  m->used = 1ull << 30;
  m->free = m->total - m->used;
  return 0;
}

}  // extern "C"

// Energy counters for the benchmarks (see DESIGN.md, "Measuring"): RAPL
// through Linux powercap on the CPU (the package domains' energy_uj, summed;
// each wraps at its max_energy_range_uj, which the difference handles) and
// NVML's total-energy counter on NVIDIA GPUs (libnvidia-ml.so.1 loaded with
// dlopen, so nothing links against the driver). A counter that cannot be read
// says why and the figure is "unavailable", never estimated. Also the units
// the report needs: joules to kWh, cost and CO2 from user-given rates.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixseg {

// The energy that passed between two readings of a counter that counts up to
// `range` and starts again at 0 (at most one wrap between readings).
uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t range);

// One source of cumulative energy.
class EnergyCounter {
 public:
  virtual ~EnergyCounter() = default;
  virtual std::string source() const = 0;  // "rapl" or "nvml"
  virtual std::string domain() const = 0;  // what it covers, e.g. "2 CPU packages (DRAM not included)"
  // Joules since an arbitrary origin, as a monotonic sum of wrap-corrected deltas.
  virtual double joules() = 0;
};

// RAPL from a powercap tree (root: normally /sys/class/powercap). Returns
// nothing and sets *why when there are no package zones or they cannot be read.
std::unique_ptr<EnergyCounter> open_rapl(const std::string& root, std::string* why);
// NVML, GPU `index`. Returns nothing and sets *why without the library, GPU or energy counter.
std::unique_ptr<EnergyCounter> open_nvml(int index, std::string* why);

// GPU state logged next to energy (NVML); empty when unavailable.
struct GpuState {
  std::optional<unsigned> temperature_c, sm_clock_mhz, memory_used_mib;
};
GpuState read_gpu_state(int index);

// Energy over a measured window, gross and net of the idle baseline.
struct EnergyFigure {
  std::string source = "unavailable";  // "rapl", "nvml" or "unavailable"
  std::string why;                     // for "unavailable"
  double gross_joules = 0, net_joules = 0, seconds = 0;
};

// Units. kWh = J / 3.6e6; cost and CO2 scale kWh by the given rates.
inline double kwh_from_joules(double joules) { return joules / 3.6e6; }
inline double cost_from_joules(double joules, double price_per_kwh) { return kwh_from_joules(joules) * price_per_kwh; }
inline double gco2_from_joules(double joules, double grid_gco2_per_kwh) {
  return kwh_from_joules(joules) * grid_gco2_per_kwh;
}

}  // namespace mixseg

// Energy: the counter difference across a wrap-around, RAPL read from a fake
// powercap tree (packages summed, sub-zones and DRAM left out, wraps
// handled, unreadable or absent trees explained), the unit conversions, and
// the benchmark's energy window over the measured steps.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bench/energy.h"
#include "bench/measure.h"
#include "test_util.h"

using namespace mixseg;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text << "\n";
}

void zone(const fs::path& root, const std::string& dir, const std::string& name, uint64_t energy, uint64_t range) {
  write(root / dir / "name", name);
  write(root / dir / "energy_uj", std::to_string(energy));
  write(root / dir / "max_energy_range_uj", std::to_string(range));
}

}  // namespace

TEST(Energy, CounterDeltaAcrossAWrap) {
  EXPECT_EQ(counter_delta(100, 250, 1000), 150u);
  EXPECT_EQ(counter_delta(900, 50, 1000), 150u);  // 100 to the top, then 50
  EXPECT_EQ(counter_delta(0, 0, 1000), 0u);
  EXPECT_EQ(counter_delta(262143328850ull - 10, 5, 262143328850ull), 15u);
}

TEST(Energy, RaplSumsPackagesAndHandlesWraps) {
  const fs::path root = test::temp_dir("rapl");
  zone(root, "intel-rapl:0", "package-0", 1'000'000, 10'000'000);
  zone(root, "intel-rapl:1", "package-1", 9'500'000, 10'000'000);
  zone(root, "intel-rapl:0:0", "core", 123, 10'000'000);  // a sub-zone: inside package-0 already
  zone(root, "intel-rapl:2", "psys", 5, 10'000'000);      // platform, not a package
  std::string why;
  auto c = open_rapl(root.string(), &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->source(), "rapl");
  EXPECT_NE(c->domain().find("2 CPU packages"), std::string::npos);
  EXPECT_DOUBLE_EQ(c->joules(), 0.0);
  write(root / "intel-rapl:0" / "energy_uj", "3000000");  // +2 J
  write(root / "intel-rapl:1" / "energy_uj", "500000");   // wrapped: +0.5 J to the top, +0.5 J after
  EXPECT_DOUBLE_EQ(c->joules(), 3.0);
  write(root / "intel-rapl:0:0" / "energy_uj", "9999999");  // sub-zones do not count
  write(root / "intel-rapl:0" / "energy_uj", "3500000");
  EXPECT_DOUBLE_EQ(c->joules(), 3.5);
  fs::remove_all(root);
}

TEST(Energy, RaplUnavailableSaysWhy) {
  std::string why;
  EXPECT_FALSE(open_rapl("/nonexistent/powercap", &why));
  EXPECT_NE(why.find("/nonexistent/powercap"), std::string::npos) << why;
  const fs::path root = test::temp_dir("rapl_empty");
  zone(root, "intel-rapl:0", "dram", 1, 100);
  EXPECT_FALSE(open_rapl(root.string(), &why));
  EXPECT_NE(why.find("no RAPL package zones"), std::string::npos) << why;
  write(root / "intel-rapl:1" / "name", "package-0");  // no energy_uj: as when it is root-only
  EXPECT_FALSE(open_rapl(root.string(), &why));
  EXPECT_NE(why.find("not readable"), std::string::npos) << why;
  fs::remove_all(root);
}

TEST(Energy, NvmlWithoutAGpuSaysWhy) {
  std::string why;
  auto c = open_nvml(0, &why);
  if (c) GTEST_SKIP() << "this machine has an NVIDIA GPU with an energy counter";
  EXPECT_FALSE(why.empty());
}

TEST(Energy, UnitConversions) {
  EXPECT_DOUBLE_EQ(kwh_from_joules(3.6e6), 1.0);
  EXPECT_DOUBLE_EQ(kwh_from_joules(1800.0), 0.0005);
  EXPECT_DOUBLE_EQ(cost_from_joules(7.2e6, 0.30), 0.60);
  EXPECT_DOUBLE_EQ(gco2_from_joules(3.6e6, 400.0), 400.0);
  EXPECT_DOUBLE_EQ(gco2_from_joules(0.0, 400.0), 0.0);
}

// A counter that gains a fixed power while the clock runs: the window covers
// the measured steps (at least 2 s) and the net figure subtracts the baseline.
namespace {
class FakeCounter : public EnergyCounter {
 public:
  explicit FakeCounter(double watts) : watts_(watts), t0_(std::chrono::steady_clock::now()) {}
  std::string source() const override { return "rapl"; }
  std::string domain() const override { return "fake"; }
  double joules() override {
    return watts_ * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  double watts_;
  std::chrono::steady_clock::time_point t0_;
};
}  // namespace

TEST(Energy, BenchmarkWindowIsNetOfIdle) {
  FakeCounter c(50.0);
  EXPECT_NEAR(idle_watts(c, 0.2), 50.0, 1e-6 * 50.0 + 0.5);
  BenchConfig cfg;
  cfg.model = {2, 1, 1, 1};
  cfg.height = cfg.width = 16;
  cfg.min_seconds = 0;  // raised to the energy window's 2 s
  cfg.warmup_steps = 1;
  cfg.energy = &c;
  cfg.idle_watts = 20.0;
  auto backend = make_backend("ref");
  const BenchMeasurement m = measure(cfg, *backend);
  EXPECT_EQ(m.energy.source, "rapl");
  EXPECT_GE(m.energy.seconds, kMinEnergySeconds);
  EXPECT_NEAR(m.energy.gross_joules, 50.0 * m.energy.seconds, 0.05 * 50.0 * m.energy.seconds);
  EXPECT_NEAR(m.energy.net_joules, m.energy.gross_joules - 20.0 * m.energy.seconds, 1e-9);
}

// --conv-ceiling: the convolutions alone are timed after the steps (at
// least min_steps times, for half the minimum time), outside the energy
// window, which holds the steps only.
TEST(Energy, ConvolutionCeilingIsTimedOutsideTheEnergyWindow) {
  BenchConfig cfg;
  cfg.model = {2, 1, 1, 1};
  cfg.height = cfg.width = 16;
  cfg.min_seconds = 0;
  cfg.warmup_steps = 1;
  auto backend = make_backend("ref");
  for (bool train : {false, true}) {
    cfg.train = train;
    cfg.conv_ceiling = false;
    EXPECT_TRUE(measure(cfg, *backend).conv_seconds.empty());
    cfg.conv_ceiling = true;
    const BenchMeasurement m = measure(cfg, *backend);
    ASSERT_GE(m.conv_seconds.size(), size_t(cfg.min_steps));
    for (double s : m.conv_seconds) EXPECT_GT(s, 0.0);
  }
  FakeCounter c(50.0);
  cfg.energy = &c;
  cfg.min_seconds = 1.0;  // steps: the 2 s energy window; convolutions: 0.5 s after it
  const BenchMeasurement m = measure(cfg, *backend);
  double steps = 0, convs = 0;
  for (double s : m.step_seconds) steps += s;
  for (double s : m.conv_seconds) convs += s;
  EXPECT_GE(convs, 0.5);
  EXPECT_LT(m.energy.seconds, steps + 0.25) << "the window should hold the steps, not the convolutions after them";
}

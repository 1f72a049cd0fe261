// Choosing a precision and batch size (advise.h).
#include "report/advise.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/error.h"

namespace mixseg {

Advice advise(const std::vector<ResultRow>& rows, const std::vector<ParityRow>& parity, const AdviseConfig& cfg) {
  if (cfg.goal != "energy" && cfg.goal != "throughput") fail("--goal must be energy or throughput, got {}", cfg.goal);
  // mixseg's rows for this model and phase; repeated runs: the median of img/s and J/img.
  std::map<std::pair<std::string, int>, std::vector<const ResultRow*>> groups;
  for (const ResultRow& r : rows)
    if (r.framework == "mixseg" && r.filters == cfg.filters && r.phase == cfg.phase)
      groups[{r.precision, r.batch}].push_back(&r);
  if (groups.empty()) fail("no mixseg {} rows for filters {} in the results", cfg.phase, cfg.filters);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  std::map<std::string, double> dice_diff;
  for (const ParitySummary& s : summarize_parity(parity)) dice_diff[s.precision] = s.dice_vs_fp32;
  Advice a;
  bool all_energy = true;
  for (const auto& [key, g] : groups) {
    AdviseCandidate c;
    c.precision = key.first;
    c.batch = key.second;
    std::vector<double> ips, j;
    for (const ResultRow* r : g) {
      ips.push_back(r->img_per_s);
      if (r->joules_per_img) j.push_back(*r->joules_per_img);
    }
    c.img_per_s = median(ips);
    if (!j.empty()) c.joules_per_img = median(j);
    c.img_per_s_runs = ips, c.joules_runs = j;
    all_energy = all_energy && c.joules_per_img && *c.joules_per_img > 0;
    if (!parity.empty()) {
      auto it = dice_diff.find(c.precision);
      if (it == dice_diff.end()) {
        c.allowed = false;
        c.why_not = "not in the parity results";
      } else {
        c.dice_vs_fp32 = it->second;
        if (it->second < -cfg.dice_tolerance) {
          c.allowed = false;
          c.why_not = fmt::format("Dice {:+.4f} against fp32, beyond the tolerance {}", it->second, cfg.dice_tolerance);
        }
      }
    }
    a.ranked.push_back(c);
  }
  a.goal_used = cfg.goal;
  if (cfg.goal == "energy" && !all_energy) {
    a.goal_used = "throughput";
    a.notes.push_back("energy was not measured (or not above the idle baseline) for every candidate: ranked by images per second");
  }
  if (parity.empty()) a.notes.push_back("no parity results given: accuracy was not checked (mixseg parity --out FILE)");
  std::stable_sort(a.ranked.begin(), a.ranked.end(), [&](const AdviseCandidate& x, const AdviseCandidate& y) {
    if (x.allowed != y.allowed) return x.allowed;
    if (a.goal_used == "energy") return *x.joules_per_img < *y.joules_per_img;
    return x.img_per_s > y.img_per_s;
  });
  if (!a.ranked.front().allowed) a.notes.push_back("no candidate is within the Dice tolerance");
  // Is the winner told apart from the runner-up? Only the runs can say.
  if (a.ranked.size() >= 2 && a.ranked[0].allowed && a.ranked[1].allowed) {
    const bool energy = a.goal_used == "energy";
    const AdviseCandidate &best = a.ranked[0], &next = a.ranked[1];
    const std::vector<double>& b = energy ? best.joules_runs : best.img_per_s_runs;
    const std::vector<double>& n = energy ? next.joules_runs : next.img_per_s_runs;
    const auto [b_lo, b_hi] = std::minmax_element(b.begin(), b.end());
    const auto [n_lo, n_hi] = std::minmax_element(n.begin(), n.end());
    const char* unit = energy ? "J/img" : "img/s";
    if (b.size() < 2 || n.size() < 2)
      a.notes.push_back("one run of the best or the runner-up: whether they differ by more than this machine's "
                        "run-to-run spread is unknown (mixseg bench --rounds 3)");
    else if (*b_lo <= *n_hi && *n_lo <= *b_hi)
      a.notes.push_back(fmt::format(
          "the runner-up, {} at batch {}, is not told apart: its runs ({:.4g}-{:.4g} {}) overlap the recommended "
          "one's ({:.4g}-{:.4g}): measure more rounds to separate them, or take either",
          next.precision, next.batch, *n_lo, *n_hi, unit, *b_lo, *b_hi));
  }
  return a;
}

}  // namespace mixseg

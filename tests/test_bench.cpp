// Benchmark bookkeeping: percentiles as numpy computes them (linear), the
// CSV header in the design's column order, quoting, and appending that
// refuses a file with another header.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bench/result_row.h"
#include "bench/stats.h"
#include "test_util.h"

using namespace mixseg;

TEST(BenchStats, PercentilesMatchNumpyLinear) {
  const std::vector<double> v{4, 1, 3, 2};  // numpy.percentile([1,2,3,4], [50, 90, 99, 0, 100])
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_NEAR(percentile(v, 99), 3.97, 1e-12);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7.0}, 90), 7.0);
  const TimingSummary s = summarize({10, 20, 30});
  EXPECT_DOUBLE_EQ(s.median, 20);
  EXPECT_DOUBLE_EQ(s.mean, 20);
  EXPECT_EQ(s.count, 3);
  test::expect_error_containing([] { percentile({}, 50); }, "no values");
  test::expect_error_containing([] { percentile({1.0}, 101); }, "101");
}

TEST(BenchCsv, SchemaOrderQuotingAndAppend) {
  EXPECT_EQ(result_csv_header(),
            "framework,framework_version,device,device_name,precision,phase,filters,depth,batch,height,width,"
            "img_per_s,ms_per_step_median,ms_p90,ms_p99,tflops,joules_per_img,energy_source,peak_mem_mib,steps,"
            "warmup_steps,git_commit,timestamp");
  ResultRow r;
  r.framework = "mixseg";
  r.device_name = "CPU, \"fast\" one";
  r.img_per_s = 12.5;
  const std::string line = to_csv(r);
  EXPECT_NE(line.find("\"CPU, \"\"fast\"\" one\""), std::string::npos) << line;
  EXPECT_NE(line.find(",,unavailable,"), std::string::npos) << "empty joules, energy source named: " << line;
  const auto dir = test::temp_dir("benchcsv");
  const std::string path = (dir / "r.csv").string();
  append_results_csv(path, {r});
  append_results_csv(path, {r, r});
  std::ifstream in(path);
  int lines = 0;
  for (std::string l; std::getline(in, l);) ++lines;
  EXPECT_EQ(lines, 4);
  // A peer's file with CRLF line ends (Python's csv module by default) takes our rows.
  const std::string crlf = (dir / "crlf.csv").string();
  std::ofstream(crlf) << result_csv_header() << "\r\n";
  append_results_csv(crlf, {r});
  EXPECT_EQ(read_results_csv(crlf).size(), 1u);
  std::ofstream(dir / "other.csv") << "a,b\n";
  test::expect_error_containing([&] { append_results_csv((dir / "other.csv").string(), {r}); }, "another header");
  std::filesystem::remove_all(dir);
}

// The backends following recorded convolution algorithms instead of timing
// them (Backend::replay_choices: the fast backend's, and cuDNN's on the
// cuda backend), and the record file around it (train/choice_record.h):
// followed choices give the recorded run's bits, and what cannot be
// followed is an error naming the line or the file.
#include <gtest/gtest.h>

#include <fstream>

#include "core/backend.h"
#include "core/threads.h"
#include "cpu/conv2d_winograd.h"
#include "test_util.h"
#include "train/choice_record.h"
#ifdef MIXSEG_CUDA_EMULATION
#include "cuda_emulation/emulation.h"
#endif

using namespace mixseg;
using namespace mixseg::test;

namespace {

// Shapes where the candidates differ: the own Winograd kernels apply (k3,
// 16+ channels), oneDNN's Winograd too (f32, 16+), neither (3 channels in,
// a 1x1), and a batch of 1 (banded backward-weights).
const ConvShape kShapes[] = {{2, 8, 12, 16, 32, 3}, {1, 6, 6, 3, 16, 3}, {1, 5, 7, 16, 8, 1}, {1, 12, 8, 16, 16, 3}};

// Runs every pass of every shape (training forward, inference with bias and
// ReLU, backward-data, backward-weights) on be in dtype dt; returns all
// outputs, in order (exactly: each value of the storage type as a double).
std::vector<double> run_passes(Backend& be, DType dt) {
  std::vector<double> out;
  for (const ConvShape& s : kShapes) {
    const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, s.k, s.k, s.cin};
    DeviceTensor x(be, dt, xs, random_vec(xs.numel(), 1)), w(be, dt, ws, random_vec(ws.numel(), 2)), y(be, dt, ys),
        z(be, dt, ys), dx(be, dt, xs), dw(be, DType::f32, ws),
        bias(be, DType::f32, {1, 1, 1, s.cout}, random_vec(size_t(s.cout), 3));
    be.conv2d_fwd(x.t, w.t, y.t);
    be.conv2d_fwd_bias(x.t, w.t, static_cast<const float*>(bias.t.data), z.t, true);
    be.conv2d_bwd_data(y.t, w.t, dx.t);
    be.conv2d_bwd_weights(x.t, z.t, dw.t);
    for (const DeviceTensor* t : {&y, &z, &dx, &dw}) {
      const std::vector<double> v = t->download();
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  return out;
}

}  // namespace

// A backend that follows another's choices computes the same bits and
// reports the same choices, in every dtype: the choices of a timed run, and
// of runs forced to one algorithm family (which timing would rarely
// reproduce on all of these passes).
TEST(ChoiceRecord, FollowedChoicesGiveTheRecordedBits) {
  std::vector<ConvAlgorithm> forced{ConvAlgorithm::fastest, ConvAlgorithm::direct};
  if (winograd_f2_available()) forced.push_back(ConvAlgorithm::winograd_f2);
  for (ConvAlgorithm a : forced)
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      auto recorded = make_fast_backend(a);
      const std::vector<double> want = run_passes(*recorded, dt);
      const std::vector<std::string> choices = recorded->choices();
      ASSERT_GE(choices.size(), std::size(kShapes) * 4) << "one line per pass and shape at least";
      auto follower = make_fast_backend();
      follower->replay_choices(choices);
      EXPECT_EQ(run_passes(*follower, dt), want) << dtype_name(dt) << ", forced " << int(a);
      EXPECT_EQ(follower->choices(), choices) << dtype_name(dt);
    }
}

// The choices name what ran, each pass once: an f16 pass (oneDNN 2.6 has no
// f16 convolution) either in the own kernels, or through f32 together with
// the f32 primitive's algorithm; never the f32 algorithm that only ran
// while the own kernel was timed against it.
TEST(ChoiceRecord, ChoicesNameWhatRan) {
  auto be = make_fast_backend();
  run_passes(*be, DType::f16);
  const auto choices = be->choices();
  auto has_prefix = [&](const std::string& p) {
    return std::any_of(choices.begin(), choices.end(), [&](const std::string& c) { return c.starts_with(p + ": "); });
  };
  size_t f16_lines = 0;
  for (const std::string& c : choices) {
    const std::string key = c.substr(0, c.rfind(": "));
    const size_t at = key.find(" f16 ");
    if (at == std::string::npos) continue;
    ++f16_lines;
    const std::string f32_key = key.substr(0, at) + " f32 " + key.substr(at + 5);
    EXPECT_EQ(has_prefix(f32_key), c.ends_with(": through f32")) << c;
  }
  EXPECT_EQ(f16_lines, std::size(kShapes) * 4);
}

TEST(ChoiceRecord, WhatCannotBeFollowedIsAnError) {
  auto fast = make_fast_backend();
  expect_error_containing([&] { fast->replay_choices({"fwd f32 1x4x4x1->1 k3: fastest"}); },
                          "'fwd f32 1x4x4x1->1 k3: fastest' is not a choice");
  expect_error_containing([&] { fast->replay_choices({"no algorithm here"}); }, "'no algorithm here'");
  // The own kernels do not run 1x1 convolutions: said when the pass comes.
  fast->replay_choices({"fwd f32 1x5x7x16->8 k1: winograd_f2"});
  expect_error_containing([&] { run_passes(*fast, DType::f32); }, "'winograd_f2' for 'fwd f32 1x5x7x16->8 k1'");
  auto ref = make_ref_backend();
  ref->replay_choices({});  // nothing to follow: fine
  expect_error_containing([&] { ref->replay_choices({"fwd f32 1x4x4x1->1 k3: direct"}); },
                          "the ref backend makes no choices");
}

// A record saved from a run, loaded and followed by a fresh backend; a
// record missing a pass leaves that pass timed and named as off the record.
TEST(ChoiceRecord, SavedLoadedAndFollowed) {
  const auto dir = temp_dir("choice_record");
  const std::string path = (dir / "conv_algorithms.json").string();
  auto first = make_fast_backend(ConvAlgorithm::direct);
  const std::vector<double> want = run_passes(*first, DType::f32);
  save_choice_record(*first, path);
  const ChoiceRecord rec = load_choice_record(path);
  EXPECT_EQ(rec.backend, "fast");
  EXPECT_EQ(rec.threads, max_threads());
  EXPECT_EQ(rec.choices, first->choices());

  auto second = make_fast_backend();
  EXPECT_EQ(replay_choice_record(*second, rec, path), "");  // same thread count: no warning
  EXPECT_EQ(run_passes(*second, DType::f32), want);
  EXPECT_TRUE(choices_off_record(*second, rec).empty());

  ChoiceRecord partial = rec;
  const std::string dropped = partial.choices.back();
  partial.choices.pop_back();
  partial.threads = max_threads() + 1;
  auto third = make_fast_backend();
  EXPECT_NE(replay_choice_record(*third, partial, path).find("threads"), std::string::npos);
  run_passes(*third, DType::f32);
  const auto off = choices_off_record(*third, partial);
  ASSERT_EQ(off.size(), 1u);
  EXPECT_EQ(off[0].substr(0, off[0].rfind(": ")), dropped.substr(0, dropped.rfind(": ")));

  auto ref = make_ref_backend();
  expect_error_containing([&] { replay_choice_record(*ref, rec, path); },
                          path + ": these choices were made by the fast backend; this run uses the ref backend");
  std::filesystem::remove_all(dir);
}

TEST(ChoiceRecord, BadFilesAreNamed) {
  const auto dir = temp_dir("choice_record_bad");
  const std::string not_json = (dir / "a.json").string(), no_choices = (dir / "b.json").string(),
                    bad_line = (dir / "c.json").string();
  std::ofstream(not_json) << "{\"backend\": ";
  std::ofstream(no_choices) << R"({"backend": "fast", "threads": 2})";
  std::ofstream(bad_line) << R"({"backend": "fast", "threads": 2, "choices": ["fwd f32 1x4x4x1->1 k3: quick"]})";
  expect_error_containing([&] { load_choice_record(not_json); }, not_json + ": not JSON");
  expect_error_containing([&] { load_choice_record(no_choices); }, no_choices + ": not a record of algorithm choices");
  expect_error_containing([&] { load_choice_record((dir / "none.json").string()); }, "none.json");
  auto fast = make_fast_backend();
  expect_error_containing([&] { replay_choice_record(*fast, load_choice_record(bad_line), bad_line); },
                          bad_line + ": 'fwd f32 1x4x4x1->1 k3: quick' is not a choice");
  std::filesystem::remove_all(dir);
}

// The cuda backend follows recorded cuDNN algorithms and math without
// running Find (on the emulated GPU, counted; there also bit for bit, and
// with an algorithm other than Find's, whose workspace must then be asked
// for), keeps the tf32 policy's f32 choices apart from fp32's, and names a
// line it cannot follow.
TEST(CudaChoiceRecord, FollowsRecordedAlgorithms) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA GPU here (or no CUDA build)";
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (bool tf32 : {false, true}) {
      if (tf32 && dt != DType::f32) continue;
      auto first = make_backend("cuda");
      first->allow_tf32(tf32);
      const std::vector<double> want = run_passes(*first, dt);
      const std::vector<std::string> choices = first->choices();
      ASSERT_FALSE(choices.empty());
      for (const std::string& c : choices) EXPECT_EQ(c.find("TF32 allowed") != std::string::npos, tf32) << c;
      auto second = make_backend("cuda");
      second->replay_choices(choices);
      second->allow_tf32(tf32);
#ifdef MIXSEG_CUDA_EMULATION
      const int finds = cuda_emulation::find_calls();
#endif
      const std::vector<double> got = run_passes(*second, dt);
      EXPECT_EQ(second->choices(), choices) << dtype_name(dt);
#ifdef MIXSEG_CUDA_EMULATION
      EXPECT_EQ(cuda_emulation::find_calls(), finds) << "Find ran although every pass was recorded";
      EXPECT_EQ(got, want) << dtype_name(dt);
      // Another algorithm than Find's (1): 3 needs more workspace, which the
      // emulated convolutions check they were given.
      std::vector<std::string> other = choices;
      for (std::string& c : other) c.replace(c.find(": algo 1"), 8, ": algo 3");
      auto third = make_backend("cuda");
      third->replay_choices(other);
      third->allow_tf32(tf32);
      EXPECT_EQ(run_passes(*third, dt), want);
      EXPECT_EQ(third->choices(), other);
      // The other policy's f32 passes are not in the record: found anew.
      if (dt == DType::f32) {
        auto fourth = make_backend("cuda");
        fourth->replay_choices(choices);
        fourth->allow_tf32(!tf32);
        const int before = cuda_emulation::find_calls();
        run_passes(*fourth, dt);
        EXPECT_GT(cuda_emulation::find_calls(), before);
      }
#else
      (void)got;
#endif
    }
  auto be = make_backend("cuda");
  expect_error_containing([&] { be->replay_choices({"fwd f32 1x4x4x1->1 k3: direct"}); },
                          "'fwd f32 1x4x4x1->1 k3: direct' is not a choice of the cuda backend");
  expect_error_containing([&] { be->replay_choices({"fwd f16 1x4x4x1->1 k3: algo 1 (warp drive)"}); },
                          "(warp drive)' is not a choice");
}

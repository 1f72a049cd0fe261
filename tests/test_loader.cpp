// The background batch loader: with any number of threads it yields exactly
// the batches the synchronous path prepares, in order, across epochs and
// after an epoch restarted mid-way (resume); shutting down with work queued
// is clean.
#include <gtest/gtest.h>

#include "data/loader.h"
#include "data/synthetic.h"
#include "test_util.h"

using namespace mixseg;

TEST(Loader, ThreadsGiveTheSameBatchesAsTheSynchronousPath) {
  const Dataset d = make_synthetic({32, 16, 5, 0.05}, 23);
  const AugmentConfig aug;
  const int batch = 3;
  const size_t steps = d.size() / batch;
  const size_t px = d.pixels() * batch;
  for (int threads : {0, 1, 3}) {
    BatchLoader loader(d, aug, 9, batch, threads, 3);
    for (int epoch = 0; epoch < 2; ++epoch) {
      const auto order = epoch_order(d.size(), 9, epoch);
      const size_t first = epoch == 1 ? 2 : 0;  // epoch 1 starts mid-way, as after an interruption
      loader.start_epoch(epoch, first, steps);
      for (size_t s = first; s < steps; ++s) {
        std::vector<float> in(px);
        std::vector<uint8_t> tg(px);
        prepare_batch(d, aug, 9, epoch, order, s, batch, in.data(), tg.data());
        const BatchLoader::Batch b = loader.next();
        ASSERT_TRUE(std::equal(in.begin(), in.end(), b.input)) << threads << " threads, epoch " << epoch << " step " << s;
        ASSERT_TRUE(std::equal(tg.begin(), tg.end(), b.target));
      }
      test::expect_error_containing([&] { loader.next(); }, "no more batches");
    }
  }
  // Epochs shuffle differently; every image appears once per epoch.
  auto o0 = epoch_order(d.size(), 9, 0), o1 = epoch_order(d.size(), 9, 1);
  EXPECT_NE(o0, o1);
  std::sort(o0.begin(), o0.end());
  for (size_t i = 0; i < o0.size(); ++i) EXPECT_EQ(o0[i], i);
}

TEST(Loader, RestartAndShutdownWithWorkInFlight) {
  const Dataset d = make_synthetic({64, 64, 6, 0.05}, 40);
  BatchLoader loader(d, AugmentConfig{}, 1, 4, 2, 4);
  loader.start_epoch(0, 0, 10);
  loader.next();
  loader.start_epoch(1, 0, 10);  // while workers prepare epoch 0's batches
  std::vector<float> in(4 * d.pixels());
  std::vector<uint8_t> tg(4 * d.pixels());
  prepare_batch(d, AugmentConfig{}, 1, 1, epoch_order(d.size(), 1, 1), 0, 4, in.data(), tg.data());
  const auto b = loader.next();
  EXPECT_TRUE(std::equal(in.begin(), in.end(), b.input));
  // The destructor stops workers that are waiting or preparing.
}

// The slots come from the given host allocator (the trainer passes its
// backend's staging memory, pinned on CUDA) and all go back to it.
TEST(Loader, SlotsComeFromTheHostAllocator) {
  const Dataset d = make_synthetic({16, 16, 7, 0.05}, 8);
  int live = 0, total = 0;
  {
    HostAllocator counting{[&](size_t n) { ++live, ++total; return std::malloc(n); },
                           [&](void* p) { --live; std::free(p); }};
    BatchLoader loader(d, AugmentConfig{}, 1, 2, 1, 3, counting);
    loader.start_epoch(0, 0, 4);
    loader.next();
    EXPECT_EQ(total, 6);  // 3 slots x (input, target)
  }
  EXPECT_EQ(live, 0);
}

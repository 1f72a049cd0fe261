// Checkpoints: a bit-exact round trip of everything saved, a resumed run whose
// losses and weights equal the uninterrupted run's, clear errors for wrong,
// truncated or foreign files, and atomic writes that never damage an
// existing file.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_util.h"
#include "cuda/device_query.h"
#include "data/folders.h"
#include "data/loader.h"
#include "data/png_io.h"
#include "data/synthetic.h"
#include "mixseg/mixseg.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/trainer.h"

using namespace mixseg;
using mixseg::test::temp_dir;
namespace fs = std::filesystem;

namespace {

TrainConfig small_config(Policy p, int epochs) {
  TrainConfig c;
  c.model = {4, 2, 1, 1};
  c.policy = p;
  c.batch = 4;
  c.epochs = epochs;
  c.seed = 11;
  c.scaler.growth_interval = 3;  // so the scale changes within the test and must be restored
  return c;
}


// A fresh checkpoint of net's initial weights (seed), 32x32, no optimizer state.
Checkpoint initial_checkpoint(const UNet& net, uint64_t seed) {
  Checkpoint c;
  c.config = net.config;
  c.height = c.width = 32;
  c.weights = init_weights(net, seed);
  return c;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(Checkpoint, RoundTripIsBitExact) {
  const fs::path dir = temp_dir("roundtrip");
  const Dataset d = make_synthetic({32, 32, 2, 0.05}, 12);
  auto backend = make_ref_backend();
  TrainConfig cfg = small_config(Policy::mixed_fp16, 2);
  const TrainResult r = train(cfg, d, Dataset{}, *backend);
  const UNet net = build_unet(cfg.model);
  const std::string path = (dir / "ck.safetensors").string();
  save_checkpoint(path, net, r.last);
  const Checkpoint c = load_checkpoint(path);
  EXPECT_EQ(c.weights.params, r.last.weights.params);
  EXPECT_EQ(c.weights.running, r.last.weights.running);
  EXPECT_EQ(c.optimizer_state.m, r.last.optimizer_state.m);
  EXPECT_EQ(c.optimizer_state.v, r.last.optimizer_state.v);
  EXPECT_EQ(c.optimizer_state.step, r.last.optimizer_state.step);
  EXPECT_EQ(c.scaler.scale, r.last.scaler.scale);
  EXPECT_EQ(c.scaler.clean_steps, r.last.scaler.clean_steps);
  EXPECT_EQ(c.scaler.skipped_steps, r.last.scaler.skipped_steps);
  EXPECT_EQ(c.optimizer.lr, r.last.optimizer.lr);
  EXPECT_EQ(c.config.filters, 4);
  EXPECT_EQ(c.config.depth, 2);
  EXPECT_EQ(c.policy, Policy::mixed_fp16);
  EXPECT_EQ(c.epoch, 2);
  EXPECT_EQ(c.height, 32);
  EXPECT_EQ(c.seed, 11u);
  // The file is plain safetensors: conv weights OHWI, metadata strings.
  const SafeTensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.tensors.at("enc0.0.conv.weight").shape, (std::vector<int64_t>{4, 3, 3, 1}));
  EXPECT_EQ(f.metadata.at("policy"), "mixed_fp16");
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumedRunEqualsUninterruptedRun) {
  for (Policy p : {Policy::fp32, Policy::mixed_fp16}) {
    const fs::path dir = temp_dir("resume");
    const Dataset all = make_synthetic({32, 32, 3, 0.05}, 20);
    auto [tr, val] = split(all, 0.2, 3);
    auto backend = make_ref_backend();
    TrainConfig full = small_config(p, 4);
    const TrainResult uninterrupted = train(full, tr, val, *backend);

    TrainConfig first = small_config(p, 2);
    first.out_dir = (dir / "run").string();
    train(first, tr, val, *backend);
    const Checkpoint ck = load_checkpoint((dir / "run" / "last.safetensors").string());
    TrainConfig rest = small_config(p, 4);
    rest.out_dir = first.out_dir;
    const TrainResult resumed = train(rest, tr, val, *backend, &ck);

    ASSERT_EQ(resumed.epochs.size(), 2u);
    for (int e = 0; e < 2; ++e) {
      EXPECT_EQ(resumed.epochs[e].epoch, uninterrupted.epochs[e + 2].epoch);
      EXPECT_EQ(resumed.epochs[e].train_loss, uninterrupted.epochs[e + 2].train_loss) << policy_info(p).name;
      EXPECT_EQ(resumed.epochs[e].val.dice_mean, uninterrupted.epochs[e + 2].val.dice_mean);
    }
    EXPECT_EQ(resumed.last.weights.params, uninterrupted.last.weights.params);
    EXPECT_EQ(resumed.last.weights.running, uninterrupted.last.weights.running);
    EXPECT_EQ(resumed.last.scaler.scale, uninterrupted.last.scaler.scale);
    // The log holds all four epochs, the resumed ones appended.
    std::ifstream log(dir / "run" / "train_log.csv");
    int lines = 0;
    for (std::string l; std::getline(log, l);) ++lines;
    EXPECT_EQ(lines, 5);
    fs::remove_all(dir);
  }
}

// An interruption mid-epoch (Ctrl-C sets the stop flag) writes a checkpoint
// that resumes at the next step: with warm-up, a cosine schedule and
// augmentation, the resumed run ends with the uninterrupted run's weights,
// statistics and loss scale, bit for bit.
TEST(Checkpoint, InterruptedMidEpochResumesExactly) {
  for (Policy p : {Policy::fp32, Policy::mixed_fp16}) {
    const fs::path dir = temp_dir("midepoch");
    const Dataset all = make_synthetic({32, 32, 3, 0.05}, 20);  // 16 training images: 4 steps per epoch
    auto [tr, val] = split(all, 0.2, 3);
    auto backend = make_ref_backend();
    TrainConfig full = small_config(p, 3);
    full.schedule.kind = LrSchedule::cosine;
    full.schedule.warmup_steps = 2;
    full.schedule.min_lr_fraction = 0.1;
    const TrainResult uninterrupted = train(full, tr, val, *backend);

    std::atomic<bool> stop{false};
    TrainConfig first = full;
    first.out_dir = (dir / "run").string();
    first.stop = &stop;
    TrainCallbacks cb;
    int steps = 0;
    cb.on_step = [&](const StepStats&) {
      if (++steps == 6) stop = true;  // after step 2 of epoch 2
    };
    const TrainResult cut = train(first, tr, val, *backend, nullptr, cb);
    EXPECT_TRUE(cut.interrupted);
    EXPECT_EQ(cut.epochs.size(), 1u);
    const Checkpoint ck = load_checkpoint((dir / "run" / "last.safetensors").string());
    EXPECT_EQ(ck.epoch, 1);
    EXPECT_EQ(ck.step_in_epoch, 2);

    TrainConfig rest = full;
    rest.out_dir = first.out_dir;
    const TrainResult resumed = train(rest, tr, val, *backend, &ck);
    EXPECT_FALSE(resumed.interrupted);
    ASSERT_EQ(resumed.epochs.size(), 2u);
    EXPECT_EQ(resumed.epochs.back().val.dice_mean, uninterrupted.epochs.back().val.dice_mean);
    EXPECT_EQ(resumed.last.weights.params, uninterrupted.last.weights.params) << policy_info(p).name;
    EXPECT_EQ(resumed.last.weights.running, uninterrupted.last.weights.running);
    EXPECT_EQ(resumed.last.scaler.scale, uninterrupted.last.scaler.scale);
    EXPECT_EQ(resumed.last.optimizer_state.step, uninterrupted.last.optimizer_state.step);
    // Mid-epoch state needs the same batch size.
    TrainConfig other = full;
    other.batch = 2;
    test::expect_error_containing([&] { train(other, tr, val, *backend, &ck); }, "cannot resume mid-epoch");
    fs::remove_all(dir);
  }
}

// A batch that cannot be read mid-epoch (a streamed file broken after the
// run began) ends the run with that file's error, but the steps before it
// are saved first, resumable like an interruption's.
TEST(Checkpoint, UnreadableBatchMidEpochKeepsTheStepsBefore) {
  const fs::path dir = temp_dir("badbatch");
  const Dataset frames = make_synthetic({32, 32, 3, 0.05}, 16);
  std::vector<DataItem> items;
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::string stem = std::to_string(i);
    GrayImage img{
        32,
        32,
        std::vector<uint8_t>(frames.images8.begin() + long(i * 1024), frames.images8.begin() + long((i + 1) * 1024)),
        {}};
    GrayImage mask{32, 32, frames.mask(i), {}};
    for (uint8_t& v : mask.pixels) v = v ? 255 : 0;
    write_png_gray((dir / (stem + ".png")).string(), img);
    write_png_gray((dir / (stem + "_seg.png")).string(), mask);
    items.push_back({stem, (dir / (stem + ".png")).string(), (dir / (stem + "_seg.png")).string()});
  }
  const Dataset streamed = stream_items(items, 32, 32);
  TrainConfig c = small_config(Policy::fp32, 1);
  c.loader_threads = 0;
  c.out_dir = (dir / "run").string();
  // The image of the 3rd step's first sample (batch 4) breaks after the files were checked.
  const size_t broken = epoch_order(streamed.size(), c.seed, 0)[2 * 4];
  std::ofstream(items[broken].image) << "garbage";
  auto backend = make_ref_backend();
  test::expect_error_containing([&] { train(c, streamed, Dataset{}, *backend); },
                                items[broken].image + ": not a readable PNG");
  const Checkpoint ck = load_checkpoint((dir / "run" / "last.safetensors").string());
  EXPECT_EQ(ck.epoch, 0);
  EXPECT_EQ(ck.step_in_epoch, 2) << "the two steps before the unreadable batch";
  fs::remove_all(dir);
}

// The decoder's upsampling is part of the model's config: a transposed
// U-Net's checkpoint loads as one (older checkpoints, without the key, as
// nearest), and resuming it as the other is refused.
TEST(Checkpoint, UpsamplingIsKeptAndChecked) {
  const fs::path dir = temp_dir("upsampling");
  const UNet net = build_unet({4, 2, 1, 1, Upsampling::transposed});
  const std::string path = (dir / "t.safetensors").string();
  save_checkpoint(path, net, initial_checkpoint(net, 1));
  const Checkpoint ck = load_checkpoint(path);
  EXPECT_EQ(ck.config.upsampling, Upsampling::transposed);
  EXPECT_EQ(build_unet(ck.config).param_numel, net.param_numel);
  const Dataset d = make_synthetic({32, 32, 3, 0.05}, 8);
  auto backend = make_ref_backend();
  TrainConfig c = small_config(Policy::fp32, 1);
  c.model = ck.config;
  Checkpoint trained = train(c, d, Dataset{}, *backend).last;
  c.model.upsampling = Upsampling::nearest;
  c.epochs = 2;
  test::expect_error_containing([&] { train(c, d, Dataset{}, *backend, &trained); },
                                "checkpoint has --upsampling transposed");
  fs::remove_all(dir);
}

// Early stopping: with a zero learning rate validation Dice never improves
// after the first epoch, so patience 2 stops after epoch 3 of 10.
TEST(Checkpoint, EarlyStoppingAfterPatienceEpochs) {
  const Dataset all = make_synthetic({32, 32, 3, 0.05}, 20);
  auto [tr, val] = split(all, 0.2, 3);
  auto backend = make_ref_backend();
  TrainConfig c = small_config(Policy::fp32, 10);
  c.optimizer.lr = 0.0;
  c.patience = 2;
  const TrainResult r = train(c, tr, val, *backend);
  EXPECT_TRUE(r.stopped_early);
  ASSERT_EQ(r.epochs.size(), 3u);
  EXPECT_EQ(r.last.epochs_since_best, 2);
  EXPECT_EQ(r.last.best_dice, r.epochs[0].val.dice_mean);
}

// A disk that fills while a checkpoint is written: RLIMIT_FSIZE makes writes
// past 4 KiB fail (EFBIG, as ENOSPC would), SIGXFSZ ignored. The save must
// fail with an error naming the file, leave the earlier checkpoint intact and
// no temporary file behind.
TEST(Checkpoint, DiskFullWhileWritingKeepsTheEarlierCheckpoint) {
  const fs::path dir = temp_dir("diskfull");
  const UNet net = build_unet({4, 2, 1, 1});
  Checkpoint c = initial_checkpoint(net, 1);
  const std::string path = (dir / "last.safetensors").string();
  save_checkpoint(path, net, c);
  const std::string before = file_bytes(path);
  ASSERT_GT(before.size(), 8192u);

  c.weights = init_weights(net, 2);
  struct rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    save_checkpoint(path, net, c);
  } catch (const Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(message.find("last.safetensors"), std::string::npos) << "no error, or not naming the file: " << message;
  EXPECT_EQ(file_bytes(path), before);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
  fs::remove_all(dir);
}

// An RGB model end to end: trained on 3-channel data, saved, and served by
// the public Predictor on interleaved 8-bit and 16-bit RGB; a gray image is
// refused with the channel counts named.
TEST(Checkpoint, RgbModelTrainsAndPredicts) {
  const fs::path dir = temp_dir("rgbmodel");
  Dataset gray = make_synthetic({32, 32, 3, 0.05}, 12);
  Dataset rgb = gray;
  rgb.channels = 3;
  rgb.images8.clear();
  for (size_t i = 0; i < gray.size(); ++i)
    for (size_t p = 0; p < gray.pixels(); ++p)
      for (int k = 0; k < 3; ++k) rgb.images16.push_back(uint16_t(gray.value(i, p) / (k + 1)));
  auto [tr, val] = split(rgb, 0.25, 1);
  auto backend = make_ref_backend();
  TrainConfig c = small_config(Policy::fp32, 1);
  c.model.in_channels = 3;
  c.out_dir = (dir / "run").string();
  const TrainResult r = train(c, tr, val, *backend);
  ASSERT_EQ(r.epochs.size(), 1u);
  TrainConfig wrong = small_config(Policy::fp32, 1);  // gray model, RGB data
  test::expect_error_containing([&] { train(wrong, tr, val, *backend); }, "1 input channels but the images have 3");

  Predictor p = Predictor::load((dir / "run" / "last.safetensors").string(), "fp32");
  EXPECT_EQ(p.info().in_channels, 3);
  std::vector<uint8_t> img8(40 * 24 * 3, 100);
  std::vector<uint16_t> img16(40 * 24 * 3, 100 * 257);
  const auto a = p.probabilities(img8.data(), 40, 24, 3), b = p.probabilities(img16.data(), 40, 24, 3);
  ASSERT_EQ(a.size(), 40u * 24);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-6);  // same image at 8 and 16 bits
  test::expect_error_containing([&] { p.probabilities(img8.data(), 40, 24); }, "takes 3 input channels, the image has 1");
  EXPECT_EQ(p.info().device, "cpu");  // the default
  // The algorithms p's timing chose, saved and followed by another
  // predictor: the same probabilities bit for bit, and the same record.
  const std::string rec = (dir / "alg.json").string(), rec2 = (dir / "alg2.json").string();
  p.save_conv_algorithms(rec);
  Predictor again = Predictor::load((dir / "run" / "last.safetensors").string(), "fp32");
  EXPECT_EQ(again.follow_conv_algorithms(rec), "");  // same thread count: no note
  EXPECT_EQ(again.probabilities(img8.data(), 40, 24, 3), a);
  again.save_conv_algorithms(rec2);
  EXPECT_EQ(file_bytes(rec2), file_bytes(rec));
  test::expect_error_containing([&] { again.follow_conv_algorithms((dir / "none.json").string()); }, "none.json");
  test::expect_error_containing([&] { Predictor::load((dir / "run" / "last.safetensors").string(), "fp32", "gpu"); },
                                "device 'gpu' is not cpu, cuda or auto");
  if (cuda_device_count() == 0) {  // auto is the CPU then, and cuda is refused with the reason
    Predictor q = Predictor::load((dir / "run" / "last.safetensors").string(), "fp32", "auto");
    EXPECT_EQ(q.info().device, "cpu");
    const auto on_auto = q.probabilities(img8.data(), 40, 24, 3);
    ASSERT_EQ(on_auto.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], on_auto[i], 1e-5);  // the same CPU (algorithms chosen by timing)
    test::expect_error_containing([&] { Predictor::load((dir / "run" / "last.safetensors").string(), "fp32", "cuda"); },
                                  "CUDA");
  } else {  // a GPU (or the emulated one): cuda and auto run there and give the CPU's probabilities
    for (const char* device : {"cuda", "auto"}) {
      Predictor q = Predictor::load((dir / "run" / "last.safetensors").string(), "fp32", device);
      EXPECT_EQ(q.info().device, "cuda") << device;
      const auto on_gpu = q.probabilities(img8.data(), 40, 24, 3);
      ASSERT_EQ(on_gpu.size(), a.size());
      for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], on_gpu[i], 1e-4) << device;  // fp32, other sum orders
    }
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, WrongFilesGiveErrorsNamingThem) {
  const fs::path dir = temp_dir("wrong");
  const UNet net = build_unet({4, 2, 1, 1});
  Checkpoint c = initial_checkpoint(net, 1);
  const std::string good = (dir / "good.safetensors").string();
  save_checkpoint(good, net, c);

  mixseg::test::expect_error_containing([&] { load_checkpoint((dir / "missing.safetensors").string()); }, "missing.safetensors");
  const std::string junk = (dir / "junk.safetensors").string();
  std::ofstream(junk) << "this is not a checkpoint at all";
  mixseg::test::expect_error_containing([&] { load_checkpoint(junk); }, "junk.safetensors");
  // Truncated: the header promises more data than there is.
  const std::string bytes = file_bytes(good);
  const std::string cut = (dir / "cut.safetensors").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  mixseg::test::expect_error_containing([&] { load_checkpoint(cut); }, "cut.safetensors");
  // Another model's checkpoint: a tensor of the wrong shape is named.
  SafeTensorsFile f = read_safetensors(good);
  f.metadata["config"] = R"({"filters": 8, "depth": 2, "in_channels": 1, "classes": 1})";
  const std::string other = (dir / "other.safetensors").string();
  write_safetensors(other, f);
  mixseg::test::expect_error_containing([&] { load_checkpoint(other); }, "enc0.0.conv.weight");
  // Counters out of range (a resumed run indexes by them), a size the model cannot take.
  for (const auto& [key, value] : {std::pair<const char*, const char*>{"epoch", "-3"}, {"step_in_epoch", "-1"},
                                   {"batch", "-2"}, {"scaler.scale", "nan"}, {"height", "30"},
                                   {"width", "1048576"}}) {
    SafeTensorsFile bad = read_safetensors(good);
    bad.metadata[key] = value;
    write_safetensors(other, bad);
    mixseg::test::expect_error_containing([&] { load_checkpoint(other); }, "other.safetensors: ");
  }
  // An upsampling the model does not know; a config without one is an older checkpoint's: nearest.
  f.metadata["config"] = R"({"filters": 4, "depth": 2, "in_channels": 1, "classes": 1, "upsampling": "bicubic"})";
  write_safetensors(other, f);
  mixseg::test::expect_error_containing([&] { load_checkpoint(other); }, "other.safetensors: upsampling 'bicubic'");
  f.metadata["config"] = R"({"filters": 4, "depth": 2, "in_channels": 1, "classes": 1})";
  write_safetensors(other, f);
  EXPECT_EQ(load_checkpoint(other).config.upsampling, Upsampling::nearest);
  // A config asking for ~20 billion weights: refused by its first tensor, before any allocation.
  f.metadata["config"] = R"({"filters": 4096, "depth": 4, "in_channels": 1, "classes": 1})";
  write_safetensors(other, f);
  mixseg::test::expect_error_containing([&] { load_checkpoint(other); }, "enc0.0.conv.weight");
  // A safetensors file that is not a mixseg checkpoint.
  SafeTensorsFile plain;
  const std::vector<float> v = {1, 2, 3};
  plain.tensors["x"] = f32_tensor(v.data(), {3});
  const std::string foreign = (dir / "foreign.safetensors").string();
  write_safetensors(foreign, plain);
  mixseg::test::expect_error_containing([&] { load_checkpoint(foreign); }, "not a mixseg checkpoint");
  // The metadata alone (what is_int8_model reads): the header's, without the
  // tensor data, and the same errors for junk and a header longer than the file.
  EXPECT_EQ(read_safetensors_metadata(good), read_safetensors(good).metadata);
  EXPECT_FALSE(read_safetensors_metadata(good).empty());
  EXPECT_TRUE(read_safetensors_metadata(foreign).empty());
  mixseg::test::expect_error_containing([&] { read_safetensors_metadata(junk); }, "junk.safetensors");
  const std::string header_cut = (dir / "header_cut.safetensors").string();
  std::ofstream(header_cut, std::ios::binary) << bytes.substr(0, 40);
  mixseg::test::expect_error_containing([&] { read_safetensors_metadata(header_cut); }, "does not fit");
  // Resuming a run of another size or policy is refused.
  c.optimizer_state = make_optimizer_state({}, net.param_numel);
  auto backend = make_ref_backend();
  TrainConfig cfg = small_config(Policy::mixed_bf16, 2);
  const Dataset d = make_synthetic({32, 32, 1, 0}, 8);
  mixseg::test::expect_error_containing([&] { train(cfg, d, Dataset{}, *backend, &c); }, "trained with fp32");
  fs::remove_all(dir);
}

TEST(Checkpoint, AtomicWriteLeavesTheOldFileIntactOnFailure) {
  const fs::path dir = temp_dir("atomic");
  const std::string path = (dir / "file.bin").string();
  std::ofstream(path) << "old contents";
  EXPECT_THROW(write_atomically(path, [](const std::string& tmp) {
                 std::ofstream(tmp) << "half of the new";
                 fail("disk full (simulated)");
               }),
               Error);
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "old contents");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u) << "the temporary file was not removed";
  mixseg::test::expect_error_containing([&] { write_atomically((dir / "no" / "such" / "f").string(), [](const std::string&) {}); }, "does not exist");
  fs::remove_all(dir);
}

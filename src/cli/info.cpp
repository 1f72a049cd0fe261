// `mixseg info`: a model's configuration, parameter count, FLOPs per image,
// activation memory per policy, precision plan, and the build's backends.
#include <fmt/format.h>

#include <dnnl.hpp>
#include <memory>

#include "cli/commands.h"
#include "quant/kernels_int8.h"
#include "core/error.h"
#include "core/threads.h"
#include "cpu/conv2d.h"
#include "model/network.h"
#include "ops/backend_ref.h"
#include "precision/plan.h"
#include "train/checkpoint.h"
#ifdef MIXSEG_HAVE_CUDA
#include "cuda/device_query.h"
#endif

namespace mixseg::cli {

namespace {

struct InfoOptions {
  std::string checkpoint, size = "512x256", precision = "fp32", upsampling = "nearest";
  int filters = 8, depth = 4, batch = 1;
  bool print_plan = false;
};

void run_info(const InfoOptions& o) {
  UNetConfig cfg{o.filters, o.depth, 1, 1, parse_upsampling(o.upsampling)};
  auto [h, w] = parse_size(o.size);
  if (!o.checkpoint.empty()) {
    const Checkpoint ck = load_checkpoint(o.checkpoint);
    cfg = ck.config;
    h = ck.height;
    w = ck.width;
    fmt::print("checkpoint: {} (trained {} for {} epochs, batch {}, seed {})\n", o.checkpoint,
               policy_info(ck.policy).name, ck.epoch, ck.batch, ck.seed);
  }
  const UNet net = build_unet(cfg);
  check_input_size(cfg, h, w);
  const double macs = net.conv_macs_per_image(h, w);
  fmt::print("model: U-Net filters={} depth={} in_channels={} classes={} upsampling={}\n", cfg.filters, cfg.depth,
             cfg.in_channels, cfg.classes, upsampling_name(cfg.upsampling));
  fmt::print("parameters: {} ({:.2f} MiB in f32)\n", net.param_numel, double(net.param_numel) * 4 / (1 << 20));
  fmt::print("input: {}x{}; forward {:.3f} GFLOP per image (convolutions), training step ~{:.3f} GFLOP per image\n", h,
             w, 2 * macs / 1e9, 6 * macs / 1e9);
  // The fast and CUDA backends' training workspaces keep each concat's
  // inputs inside the concat's buffers (Op::channel_slices, network.cpp);
  // the reference backend copies. Both planned here (nothing runs).
  auto ref = make_ref_backend(), fast = make_fast_backend();
  auto mib = [&](Backend& be, Policy p) {
    return double(make_workspace(net, be, p, o.batch, h, w, true)->activations.capacity()) / (1 << 20);
  };
  fmt::print("training workspace at batch {}: activation memory per policy (fast and CUDA backends, ref backend)\n",
             o.batch);
  for (Policy p : {Policy::fp32, Policy::mixed_fp16, Policy::mixed_bf16})
    fmt::print("  {:<11} {:>10.2f} MiB {:>10.2f} MiB\n", policy_info(p).name, mib(*fast, p), mib(*ref, p));
  if (o.print_plan) fmt::print("{}", precision_plan(net, parse_policy(o.precision)));
  DnnlConvolutions dnnl;
  fmt::print(
      "backends: ref (CPU reference), fast (oneDNN {}.{}.{}; native f16 convolutions: {}, bf16: {}; int8 "
      "convolutions: {}); {} thread{}",
      dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch, dnnl.native(DType::f16) ? "yes" : "no",
      dnnl.native(DType::bf16) ? "yes" : "no", int8_conv_variant(), max_threads(), max_threads() == 1 ? "" : "s");
#ifdef MIXSEG_HAVE_CUDA
  const int n = cuda_device_count();
  fmt::print("; CUDA build, {} GPU(s){}", n, n > 0 ? ": " + cuda_device_name(0) : "");
#else
  fmt::print("; built without CUDA");
#endif
  fmt::print("\n");
}

}  // namespace

void add_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* c = app.add_subcommand("info", "Model size, FLOPs, memory per policy, precision plan, backends");
  c->add_option("--checkpoint", o->checkpoint, "Describe this checkpoint's model");
  c->add_option("--filters", o->filters, "Channels of the first level")->capture_default_str()->check(positive);
  c->add_option("--depth", o->depth, "Number of poolings")->capture_default_str()->check(CLI::Range(1, 8));
  c->add_option("--upsampling", o->upsampling, "The decoder's x2 upsampling: nearest or transposed")
      ->capture_default_str()
      ->check(CLI::IsMember({"nearest", "transposed"}));
  c->add_option("--size", o->size, "Input size HxW")->capture_default_str();
  c->add_option("--batch", o->batch, "Batch size for the memory figures")->capture_default_str()->check(positive);
  c->add_option("--precision", o->precision, "Policy for --print-precision-plan")->capture_default_str();
  c->add_flag("--print-precision-plan", o->print_plan, "Print every layer's dtypes under --precision");
  c->callback([o] { run_info(*o); });
}

}  // namespace mixseg::cli

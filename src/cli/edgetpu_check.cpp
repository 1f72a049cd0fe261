// `mixseg edgetpu-check`: the Edge TPU preflight of a .tflite file (export/edgetpu_check.h).
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "export/edgetpu_check.h"

namespace mixseg::cli {

void add_edgetpu_check(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("edgetpu-check",
                                   "Check a .tflite file against the Edge TPU's rules; exits 1 if an op would fall back to the CPU");
  c->add_option("model", *path, "The .tflite file")->required();
  c->callback([path] {
    const EdgeTpuReport r = check_edgetpu(read_file_bytes(*path), *path);
    fmt::print("{:>4}  {:<24} {:<16} {:<11} {}\n", "op", "type", "output", "runs on", "why");
    for (const EdgeTpuOp& op : r.ops)
      fmt::print("{:>4}  {:<24} {:<16} {:<11} {}\n", op.index, op.op, op.output, op.where, op.reason);
    fmt::print("parameters: {} bytes ({:.2f} MiB of ~8 MiB on-chip)\n", r.parameter_bytes,
               double(r.parameter_bytes) / (1 << 20));
    for (const std::string& n : r.notes) fmt::print("note: {}\n", n);
    if (r.first_fallback >= 0) {
      const EdgeTpuOp& op = r.ops[size_t(r.first_fallback)];
      fail("{}: op {} ({} -> {}) would be the first to fall back to the CPU, and every op after it with it: {}", *path,
           op.index, op.op, op.output, op.reason);
    }
    fmt::print("{}: every op maps to the Edge TPU\n", *path);
  });
}

}  // namespace mixseg::cli

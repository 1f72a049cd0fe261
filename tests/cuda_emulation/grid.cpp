// The execution of a kernel launch in the CPU emulation of the GPU: every
// block of the grid in turn, every thread of the block in turn.
//
// A kernel that never calls __syncthreads() runs its threads one after the
// other to completion, plain calls: any order is one a GPU could take, so
// a race-free kernel gives the GPU's result. A kernel that does (block
// reductions) runs each thread of a block as a fiber with a stack of its
// own: the threads run until each has reached the barrier (or ended), then
// all go on; a barrier that some threads of the block never reach is an
// error, as it is undefined on the GPU. Which kernels need fibers is learnt
// on each kernel's first launch, which always uses them.
//
// Blocks, and the threads of a block, run in one order on one launch and in
// the reverse order on the next: a GPU promises no order, so a kernel whose
// result depends on one (a block reading what another wrote, a thread what
// a neighbour wrote without a barrier) gives different results on the two
// and fails its test.
//
// Fibers switch by a few lines of x86-64 assembly (callee-saved registers,
// the stack pointer, MXCSR and the x87 control word), ~100x cheaper than
// swapcontext, which makes a system call per switch.
#include "cuda_emulation/device.h"
// (device.h first: it defines the CUDA execution-space markers.)
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_emulation/emulation.h"

#if !defined(__x86_64__)
#error "the CUDA emulation's fibers switch by x86-64 assembly"
#endif

// Saves the callee-saved state on the current stack and its pointer in
// *save_sp, then continues on the stack load_sp (as saved by a switch, or
// prepared by start_fiber).
extern "C" void mixseg_emulation_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl mixseg_emulation_switch
    .type mixseg_emulation_switch, @function
mixseg_emulation_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mixseg_emulation_switch, .-mixseg_emulation_switch
)");

namespace mixseg::cuda_emulation {

namespace {

ThreadPosition g_position;
std::vector<unsigned char> g_shared;  // the block's dynamic shared memory

struct Fiber {
  void* sp = nullptr;
  uint3 thread{0, 0, 0};
  bool done = false, at_barrier = false;
  std::exception_ptr error;
};

constexpr size_t kFiberStack = size_t(128) << 10;
std::vector<std::unique_ptr<unsigned char[]>> g_stacks;  // reused from launch to launch
void* g_scheduler_sp = nullptr;
Fiber* g_current = nullptr;  // null outside fibers
const std::function<void()>* g_body = nullptr;
bool g_barrier_seen = false;
bool g_reverse = false;  // this launch's order (alternates)

// The i-th of n in this launch's order.
unsigned long long in_order(unsigned long long i, unsigned long long n) { return g_reverse ? n - 1 - i : i; }

[[noreturn]] void fiber_main() {
  Fiber* f = g_current;
  try {
    (*g_body)();
  } catch (...) {
    f->error = std::current_exception();
  }
  f->done = true;
  mixseg_emulation_switch(&f->sp, g_scheduler_sp);
  __builtin_unreachable();
}

// A stack on which the first switch "returns" into fiber_main, with the
// current MXCSR and x87 control word, and a null return address above it.
void start_fiber(Fiber& f, unsigned char* stack) {
  auto top = reinterpret_cast<uintptr_t>(stack + kFiberStack) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;                                        // fiber_main's return address: none
  *--slot = reinterpret_cast<uint64_t>(&fiber_main);  // popped by ret
  for (int r = 0; r < 6; ++r) *--slot = 0;            // rbp, rbx, r12-r15
  uint32_t control[2] = {0, 0};
  asm volatile("stmxcsr %0" : "=m"(control[0]));
  asm volatile("fnstcw %0" : "=m"(control[1]));
  std::memcpy(--slot, control, sizeof control);
  f.sp = slot;
}

void resume(Fiber& f) {
  g_current = &f;
  g_position.thread = f.thread;
  mixseg_emulation_switch(&g_scheduler_sp, f.sp);
  g_current = nullptr;
}

uint3 thread_index(unsigned t, const dim3& b) { return {t % b.x, t / b.x % b.y, t / (b.x * b.y)}; }

void run_block_in_fibers(unsigned threads, const std::function<void()>& body) {
  while (g_stacks.size() < threads) g_stacks.push_back(std::make_unique<unsigned char[]>(kFiberStack));
  std::vector<Fiber> fibers(threads);
  for (unsigned t = 0; t < threads; ++t) {
    fibers[t].thread = thread_index(t, g_position.block_dim);
    start_fiber(fibers[t], g_stacks[t].get());
  }
  g_body = &body;
  for (;;) {
    unsigned waiting = 0, done = 0;
    for (unsigned i = 0; i < threads; ++i) {
      Fiber& f = fibers[in_order(i, threads)];
      if (f.done) continue;
      f.at_barrier = false;
      resume(f);
      if (f.error) std::rethrow_exception(f.error);
      waiting += f.at_barrier;
    }
    for (const Fiber& f : fibers) done += f.done;
    if (waiting == 0) return;
    g_barrier_seen = true;
    if (done > 0)
      throw std::runtime_error(std::to_string(done) + " threads of block (" + std::to_string(g_position.block.x) +
                               ", " + std::to_string(g_position.block.y) + ") ended while " + std::to_string(waiting) +
                               " waited at __syncthreads() (every thread of a block must reach it)");
  }
}

bool valid_configuration(dim3 grid, dim3 block, size_t shared_bytes) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  return threads >= 1 && threads <= 1024 && block.z <= 64 && grid.x >= 1 && grid.x <= 0x7fffffffu && grid.y >= 1 &&
         grid.y <= 65535 && grid.z >= 1 && grid.z <= 65535 && shared_bytes <= (size_t(48) << 10);
}

void run_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  static std::map<const void*, bool> uses_barriers;  // by kernel, once launched
  const auto known = uses_barriers.find(kernel);
  const bool fibers = known == uses_barriers.end() || known->second;
  g_barrier_seen = false;
  g_position.block_dim = block;
  g_position.grid_dim = grid;
  g_reverse = !g_reverse;
  const unsigned threads = block.x * block.y * block.z;
  const unsigned long long blocks = 1ull * grid.x * grid.y * grid.z;
  for (unsigned long long i = 0; i < blocks; ++i) {
    const unsigned long long b = in_order(i, blocks);
    g_position.block = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (1ull * grid.x * grid.y))};
    g_shared.assign(shared_bytes, 0xff);  // NaN in every float type: reads before writes show
    if (fibers) {
      run_block_in_fibers(threads, body);
    } else {
      for (unsigned t = 0; t < threads; ++t) {
        g_position.thread = thread_index(unsigned(in_order(t, threads)), block);
        body();
      }
    }
  }
  if (known == uses_barriers.end()) uses_barriers[kernel] = g_barrier_seen;
}

}  // namespace

const ThreadPosition& position() { return g_position; }

void sync_threads() {
  if (!g_current)
    throw std::logic_error(
        "__syncthreads() in a kernel whose first launch never reached one (its threads run without "
        "fibers)");
  g_current->at_barrier = true;
  mixseg_emulation_switch(&g_current->sp, g_scheduler_sp);
}

void* dynamic_shared_memory() { return g_shared.data(); }

void check_kernel_pointer(const void* p, int parameter) {
  if (p && !reachable_by_device(p))
    throw std::runtime_error("CUDA emulation: parameter " + std::to_string(parameter) +
                             " of a kernel launch points to host memory that is not pinned (the GPU cannot read it)");
}

void submit_kernel(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   std::function<void()> thread_body) {
  if (!valid_configuration(grid, block, shared_bytes)) {
    set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  submit(stream, [=] {
    run_grid(kernel, grid, block, shared_bytes, thread_body);
    if (!guards_intact()) set_last_error(cudaErrorIllegalAddress);
  });
}

}  // namespace mixseg::cuda_emulation

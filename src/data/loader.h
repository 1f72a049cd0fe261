// Prepares training batches ahead of the trainer on background threads:
// each batch is converted to the network's f32 input and augmented while
// the trainer computes on the previous ones. A batch's content depends only
// on (seed, epoch, step): the shuffle of the epoch and each sample's own
// augmentation stream, so results do not depend on the number of threads or
// their timing, and a resumed run sees the same batches.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace mixseg {

// The epoch's sample order: a Fisher-Yates shuffle seeded by (seed, epoch).
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int epoch);

// Fills one batch (images as f32 x / 255, augmented; masks 0/1) for `step` of
// `epoch` in `order`: the work each loader thread does.
void prepare_batch(const Dataset& data, const AugmentConfig& aug, uint64_t seed, int epoch,
                   const std::vector<size_t>& order, size_t step, int batch, float* input, uint8_t* target);

// Where the batch slots live: ordinary memory by default; the trainer passes
// its backend's host staging memory (pinned when the device is CUDA).
struct HostAllocator {
  std::function<void*(size_t)> allocate = [](size_t n) { return std::malloc(n); };
  std::function<void(void*)> deallocate = [](void* p) { std::free(p); };
};

class BatchLoader {
 public:
  // threads = 0 prepares batches on the calling thread in next() (no
  // background work); prefetch (>= 2) slots hold batches prepared ahead.
  BatchLoader(const Dataset& data, const AugmentConfig& aug, uint64_t seed, int batch, int threads, int prefetch = 4,
              HostAllocator host = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts an epoch at step first_step (later steps follow in order).
  void start_epoch(int epoch, size_t first_step, size_t steps);
  struct Batch {
    const float* input;
    const uint8_t* target;
  };
  // The next step's batch, valid until the following call (waits if not
  // ready yet); throws what preparing it threw.
  Batch next();

 private:
  void worker();
  struct Slot {
    float* input = nullptr;    // batch * image values
    uint8_t* target = nullptr;  // batch * pixels
    int64_t step = -1;   // the step it holds (or is being filled with)
    bool ready = false;
    std::exception_ptr error;  // why the batch could not be prepared (rethrown by next())
  };
  const Dataset& data_;
  HostAllocator host_;
  AugmentConfig aug_;
  uint64_t seed_;
  int batch_;
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> order_;
  int epoch_ = 0;
  int64_t generation_ = 0;       // bumped by start_epoch: workers drop stale work
  int64_t next_claim_ = 0;       // next step a worker will prepare
  int64_t next_take_ = 0;        // next step the trainer takes
  int64_t end_ = 0;              // one past the epoch's last step
  int busy_ = 0;                 // workers filling a slot right now
  bool stop_ = false;
};

}  // namespace mixseg

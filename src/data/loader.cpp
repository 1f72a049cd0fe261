// Background batch preparation (see loader.h).
#include "data/loader.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "core/rng.h"

namespace mixseg {

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int epoch) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  Rng rng = Rng::derived(seed, uint64_t(epoch) + 1, 0x7au);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

void prepare_batch(const Dataset& data, const AugmentConfig& aug, uint64_t seed, int epoch,
                   const std::vector<size_t>& order, size_t step, int batch, float* input, uint8_t* target) {
  const size_t px = data.pixels(), nv = data.image_values();
  for (int b = 0; b < batch; ++b) {
    const size_t pos = step * size_t(batch) + size_t(b);
    const size_t i = order.at(pos);
    float* in = input + size_t(b) * nv;
    data.read(i, 1, in, target + size_t(b) * px);
    Rng arng = augment_rng(seed, epoch, pos);
    augment(aug, arng, data.h, data.w, data.channels, in, target + size_t(b) * px);
  }
}

BatchLoader::BatchLoader(const Dataset& data, const AugmentConfig& aug, uint64_t seed, int batch, int threads,
                         int prefetch, HostAllocator host)
    : data_(data), host_(std::move(host)), aug_(aug), seed_(seed), batch_(batch), slots_(size_t(std::max(prefetch, 2))) {
  if (batch < 1) fail("loader: batch size must be >= 1, got {}", batch);
  for (auto& s : slots_) {
    s.input = static_cast<float*>(host_.allocate(size_t(batch) * data.image_values() * sizeof(float)));
    s.target = static_cast<uint8_t*>(host_.allocate(size_t(batch) * data.pixels()));
    if (!s.input || !s.target) fail("loader: out of host memory for {} batches of {}", slots_.size(), batch);
  }
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { worker(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  for (auto& s : slots_) {
    host_.deallocate(s.input);
    host_.deallocate(s.target);
  }
}

void BatchLoader::start_epoch(int epoch, size_t first_step, size_t steps) {
  std::vector<size_t> order = epoch_order(data_.size(), seed_, epoch);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return busy_ == 0; });  // no worker is writing a slot
  order_ = std::move(order);
  epoch_ = epoch;
  ++generation_;
  next_claim_ = next_take_ = int64_t(first_step);
  end_ = int64_t(steps);
  for (auto& s : slots_) {
    s.step = -1;
    s.ready = false;
    s.error = nullptr;
  }
  lock.unlock();
  cv_.notify_all();
}

void BatchLoader::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Claim the next step whose slot is free. The trainer holds the slot of
    // step next_take_ - 1 until its next call, so at most slots - 1 steps
    // are prepared ahead.
    cv_.wait(lock, [&] {
      return stop_ || (next_claim_ < end_ && next_claim_ < next_take_ + int64_t(slots_.size()) - 1);
    });
    if (stop_) return;
    const int64_t step = next_claim_++;
    Slot& slot = slots_[size_t(step) % slots_.size()];
    slot.step = step;
    slot.ready = false;
    ++busy_;
    lock.unlock();
    // The slot is this worker's alone until it is marked ready (start_epoch
    // waits for busy_ == 0 before it resets slots). A failure (a streamed
    // file that no longer decodes) goes to the trainer with the batch.
    std::exception_ptr error;
    try {
      prepare_batch(data_, aug_, seed_, epoch_, order_, size_t(step), batch_, slot.input, slot.target);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    slot.error = error;
    --busy_;
    slot.ready = true;
    cv_.notify_all();
  }
}

BatchLoader::Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (next_take_ >= end_) fail("loader: no more batches in this epoch");
  const int64_t step = next_take_;
  Slot& slot = slots_[size_t(step) % slots_.size()];
  if (threads_.empty()) {  // synchronous: prepare here
    prepare_batch(data_, aug_, seed_, epoch_, order_, size_t(step), batch_, slot.input, slot.target);
    slot.step = step;
    slot.ready = true;
  } else {
    cv_.wait(lock, [&] { return slot.step == step && slot.ready; });
    if (slot.error) std::rethrow_exception(std::exchange(slot.error, nullptr));
  }
  // The trainer uses this slot until its next call; the slot of the step
  // before is free from now on, so workers may run one more step ahead.
  ++next_take_;
  lock.unlock();
  cv_.notify_all();
  return {slot.input, slot.target};
}

}  // namespace mixseg

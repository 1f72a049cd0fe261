// The segmentation loss on the GPU (kernels.h; ops/loss_ref.h is the
// reference): BCE on logits + soft Dice, every term in double. The sums
// kernel reduces within each block (shared memory tree) and adds the block's
// four sums to the control block's with double atomics; one thread turns
// them into the loss (loss_finish, the reference's own function); the
// gradient kernel reads Dice's terms and the loss scale from there, so
// nothing goes through the host.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

// The stable sigmoid from e = exp(-|z|) (ops/loss_ref.h's sigmoid_from):
// one exp serves it and BCE's log1p(exp(-|z|)).
__device__ __forceinline__ double sigmoid_from(double z, double e) { return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }

template <class T>
__global__ void loss_sums_kernel(size_t n, const T* logits, const uint8_t* target, double* sums) {
  __shared__ double sh[4][kThreads];
  double acc[4] = {0, 0, 0, 0};
  MIXSEG_GRID_STRIDE(k, n) {
    const double z = load(logits[k]), t = target[k] ? 1.0 : 0.0, e = exp(-fabs(z)), p = sigmoid_from(z, e);
    acc[0] += fmax(z, 0.0) - z * t + log1p(e);
    acc[1] += p;
    acc[2] += t;
    acc[3] += p * t;
  }
  for (int j = 0; j < 4; ++j) sh[j][threadIdx.x] = acc[j];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride)
      for (int j = 0; j < 4; ++j) sh[j][threadIdx.x] += sh[j][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int j = 0; j < 4; ++j) atomicAdd(&sums[j], sh[j][0]);
}

__global__ void loss_finish_kernel(StepControl* ctl, double n, double w_bce, double w_dice, double smooth) {
  loss_finish(*ctl, n, w_bce, w_dice, smooth);
}

template <class T>
__global__ void loss_grad_kernel(size_t n, const T* logits, const uint8_t* target, double w_bce, double w_dice,
                                 const StepControl* ctl, T* dlogits) {
  const double m = double(n), den = ctl->loss_den, num = ctl->loss_num, grad_scale = ctl->scale;
  const double inv_den2 = 1.0 / (den * den);
  MIXSEG_GRID_STRIDE(k, n) {
    const double z = load(logits[k]), t = target[k] ? 1.0 : 0.0, p = sigmoid_from(z, exp(-fabs(z)));
    const double g_bce = (p - t) / m;
    const double g_dice = -(2 * t * den - num) * inv_den2 * p * (1 - p);
    dlogits[k] = store<T>(float(grad_scale * (w_bce * g_bce + w_dice * g_dice)));
  }
}

}  // namespace

void loss(FloatType t, size_t n, const void* logits, const uint8_t* target, double w_bce, double w_dice, double smooth,
          StepControl* ctl, void* dlogits, cudaStream_t stream) {
  double* sums = ctl->loss_sums;  // a device address: only offset here, never read
  cudaMemsetAsync(sums, 0, 4 * sizeof(double), stream);
  const unsigned blocks = blocks_for(n) < 1024 ? blocks_for(n) : 1024;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(loss_sums_kernel<T>, blocks, kThreads, 0, stream, n, static_cast<const T*>(logits), target, sums);
  });
  check_launch("loss_sums");
  launch(loss_finish_kernel, 1, 1, 0, stream, ctl, double(n), w_bce, w_dice, smooth);
  check_launch("loss_finish");
  if (!dlogits) return;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch(loss_grad_kernel<T>, blocks_for(n), kThreads, 0, stream, n, static_cast<const T*>(logits), target, w_bce,
           w_dice, ctl, static_cast<T*>(dlogits));
  });
  check_launch("loss_grad");
}

}  // namespace mixseg::cuda

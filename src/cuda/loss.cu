// The segmentation loss on the GPU (kernels.h; ops/loss_ref.h is the
// reference): BCE on logits + soft Dice, every term in double. loss_sums
// reduces within each block (shared memory tree) and adds the block's four
// sums to the totals with double atomics; the host turns the totals into the
// loss and launches loss_grad, which needs them.
#include "cuda/cuda_types.cuh"

namespace mixseg::cuda {

namespace {

__device__ __forceinline__ double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

template <class T>
__global__ void loss_sums_kernel(size_t n, const T* logits, const uint8_t* target, double* sums) {
  __shared__ double sh[4][kThreads];
  double acc[4] = {0, 0, 0, 0};
  MIXSEG_GRID_STRIDE(k, n) {
    const double z = load(logits[k]), t = target[k] ? 1.0 : 0.0, p = sigmoid(z);
    acc[0] += fmax(z, 0.0) - z * t + log1p(exp(-fabs(z)));
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

template <class T>
__global__ void loss_grad_kernel(size_t n, const T* logits, const uint8_t* target, double m, double den, double num,
                                 double w_bce, double w_dice, double grad_scale, T* dlogits) {
  const double inv_den2 = 1.0 / (den * den);
  MIXSEG_GRID_STRIDE(k, n) {
    const double z = load(logits[k]), t = target[k] ? 1.0 : 0.0, p = sigmoid(z);
    const double g_bce = (p - t) / m;
    const double g_dice = -(2 * t * den - num) * inv_den2 * p * (1 - p);
    dlogits[k] = store<T>(float(grad_scale * (w_bce * g_bce + w_dice * g_dice)));
  }
}

}  // namespace

void loss_sums(FloatType t, size_t n, const void* logits, const uint8_t* target, double* sums, cudaStream_t stream) {
  cudaMemsetAsync(sums, 0, 4 * sizeof(double), stream);
  const unsigned blocks = blocks_for(n) < 1024 ? blocks_for(n) : 1024;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    loss_sums_kernel<T><<<blocks, kThreads, 0, stream>>>(n, static_cast<const T*>(logits), target, sums);
  });
  check_launch("loss_sums");
}

void loss_grad(FloatType t, size_t n, const void* logits, const uint8_t* target, double m, double den, double num,
               double w_bce, double w_dice, double grad_scale, void* dlogits, cudaStream_t stream) {
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    loss_grad_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(n, static_cast<const T*>(logits), target, m, den, num,
                                                                w_bce, w_dice, grad_scale, static_cast<T*>(dlogits));
  });
  check_launch("loss_grad");
}

}  // namespace mixseg::cuda

// Reference 2-D convolution, stride 1, "same" zero padding (k/2), with an
// optional epilogue for inference (BatchNorm folded into the weights): a
// per-output-channel f32 bias and a ReLU, applied to the f32 sum before its
// one rounding.
// x: [N,H,W,Cin] (NHWC), w: [Cout,K,K,Cin] (OHWI, the layout of cuDNN's NHWC
// filters, oneDNN's ohwi and TFLite's CONV_2D), y: [N,H,W,Cout].
// Inputs of storage type T are widened, products accumulate in acc_t<T> (f32),
// and each output is rounded to T once: the rounding points of tensor cores.
#pragma once
#include <cstddef>

#include "ops/kernel_types.h"

namespace mixseg {

struct ConvShape {
  int n, h, w, cin, cout, k;
  size_t weight_numel() const { return size_t(cout) * k * k * cin; }
  // Multiply-adds of the forward pass (the backward passes cost the same each).
  double macs() const { return double(n) * h * w * k * k * cin * cout; }
};

// bias: null or [Cout] f32; relu: y = max(sum + bias, 0).
template <class T>
void conv2d_fwd_ref(const ConvShape& s, const T* x, const T* w, T* y, const float* bias = nullptr, bool relu = false);
// dx = d(loss)/dx from dy, the transposed convolution of dy with w.
template <class T>
void conv2d_bwd_data_ref(const ConvShape& s, const T* dy, const T* w, T* dx);
// dw = d(loss)/dw (overwritten), always accumulated and stored in acc_t<T>.
template <class T>
void conv2d_bwd_weights_ref(const ConvShape& s, const T* x, const T* dy, acc_t<T>* dw);

}  // namespace mixseg

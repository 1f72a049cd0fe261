// CUDA device discovery (device_query.cu; in builds without CUDA,
// core/cuda_absent.cpp: no devices).
#pragma once
#include <string>

namespace mixseg {

int cuda_device_count();  // 0 when no driver or no GPU
std::string cuda_device_name(int device);
// "CUDA runtime 13.0, driver 13.0, cuDNN 9.14.0" (what a benchmark's metadata records).
std::string cuda_versions();

}  // namespace mixseg

// BAGLS folder loading, subsets, splits and resizing (see dataset.h).
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/rng.h"
#include "data/png_io.h"

namespace mixseg {

namespace fs = std::filesystem;

template <class T>
std::vector<T> resize_bilinear(const T* src, int sh, int sw, int dh, int dw) {
  std::vector<T> out(size_t(dh) * dw);
  for (int y = 0; y < dh; ++y) {
    const double fy = std::clamp((y + 0.5) * sh / dh - 0.5, 0.0, double(sh - 1));
    const int y0 = int(fy), y1 = std::min(y0 + 1, sh - 1);
    const double ay = fy - y0;
    for (int x = 0; x < dw; ++x) {
      const double fx = std::clamp((x + 0.5) * sw / dw - 0.5, 0.0, double(sw - 1));
      const int x0 = int(fx), x1 = std::min(x0 + 1, sw - 1);
      const double ax = fx - x0;
      const double v = (1 - ay) * ((1 - ax) * src[size_t(y0) * sw + x0] + ax * src[size_t(y0) * sw + x1]) +
                       ay * ((1 - ax) * src[size_t(y1) * sw + x0] + ax * src[size_t(y1) * sw + x1]);
      if constexpr (std::is_same_v<T, uint8_t>)
        out[size_t(y) * dw + x] = uint8_t(std::lround(v));
      else
        out[size_t(y) * dw + x] = T(v);
    }
  }
  return out;
}
template std::vector<uint8_t> resize_bilinear<uint8_t>(const uint8_t*, int, int, int, int);
template std::vector<float> resize_bilinear<float>(const float*, int, int, int, int);

std::vector<uint8_t> resize_nearest(const uint8_t* src, int sh, int sw, int dh, int dw) {
  std::vector<uint8_t> out(size_t(dh) * dw);
  for (int y = 0; y < dh; ++y) {
    const int sy = std::min(sh - 1, int((y + 0.5) * sh / dh));
    for (int x = 0; x < dw; ++x) out[size_t(y) * dw + x] = src[size_t(sy) * sw + std::min(sw - 1, int((x + 0.5) * sw / dw))];
  }
  return out;
}

Dataset load_bagls_folder(const std::string& dir, int h, int w) {
  if (!fs::exists(dir)) fail("{}: data folder does not exist", dir);
  if (!fs::is_directory(dir)) fail("{}: is not a folder", dir);
  // stem -> (image path, mask path)
  std::map<std::string, std::pair<std::string, std::string>> items;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() != ".png") continue;
    const std::string stem = e.path().stem().string();
    if (stem.size() > 4 && stem.ends_with("_seg"))
      items[stem.substr(0, stem.size() - 4)].second = e.path().string();
    else
      items[stem].first = e.path().string();
  }
  if (items.empty()) fail("{}: no PNG images found (expected BAGLS-style N.png with N_seg.png)", dir);
  Dataset d;
  d.h = h;
  d.w = w;
  for (const auto& [stem, paths] : items) {
    if (paths.first.empty()) fail("{}: mask without its image {}", paths.second, (fs::path(dir) / (stem + ".png")).string());
    if (paths.second.empty()) fail("{}: image without its mask {}", paths.first, (fs::path(dir) / (stem + "_seg.png")).string());
    GrayImage img = read_png_gray(paths.first);
    GrayImage msk = read_png_gray(paths.second);
    if (img.h != msk.h || img.w != msk.w)
      fail("{}: mask is {}x{} but its image {} is {}x{}", paths.second, msk.h, msk.w, paths.first, img.h, img.w);
    if (d.h == 0) {
      d.h = img.h;
      d.w = img.w;
    }
    if (img.h != d.h || img.w != d.w) {
      img.pixels = resize_bilinear(img.pixels.data(), img.h, img.w, d.h, d.w);
      msk.pixels = resize_nearest(msk.pixels.data(), msk.h, msk.w, d.h, d.w);
    }
    d.names.push_back(stem);
    d.images.insert(d.images.end(), img.pixels.begin(), img.pixels.end());
    for (uint8_t v : msk.pixels) d.masks.push_back(v != 0);
  }
  return d;
}

Dataset subset(const Dataset& d, const std::vector<size_t>& idx) {
  Dataset s;
  s.h = d.h;
  s.w = d.w;
  for (size_t i : idx) {
    s.names.push_back(d.names.at(i));
    s.images.insert(s.images.end(), d.image(i), d.image(i) + d.pixels());
    s.masks.insert(s.masks.end(), d.mask(i), d.mask(i) + d.pixels());
  }
  return s;
}

std::pair<Dataset, Dataset> split(const Dataset& d, double val_fraction, uint64_t seed) {
  if (val_fraction < 0 || val_fraction >= 1) fail("validation fraction must be in [0, 1), got {}", val_fraction);
  std::vector<size_t> idx(d.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  Rng rng = Rng::derived(seed, 0x5b1u);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng.below(i)]);
  size_t nval = size_t(std::lround(val_fraction * double(d.size())));
  if (val_fraction > 0 && nval == 0) nval = 1;
  if (nval >= d.size()) fail("validation fraction {} leaves no training images out of {}", val_fraction, d.size());
  std::vector<size_t> val(idx.begin(), idx.begin() + long(nval)), train(idx.begin() + long(nval), idx.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {subset(d, train), subset(d, val)};
}

}  // namespace mixseg

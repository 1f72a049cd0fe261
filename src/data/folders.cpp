// Dataset folder layouts (see folders.h).
#include "data/folders.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/threads.h"
#include "data/png_io.h"

namespace mixseg {

namespace fs = std::filesystem;

namespace {

void check_dir(const std::string& dir, const char* what) {
  if (dir.empty()) fail("no {} folder given", what);
  if (!fs::exists(dir)) fail("{}: {} folder does not exist", dir, what);
  if (!fs::is_directory(dir)) fail("{}: is not a folder", dir);
}

// PNG files of a folder: stem -> path.
std::map<std::string, std::string> pngs(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".png") out[e.path().stem().string()] = e.path().string();
  return out;
}

std::vector<DataItem> pair_up(const std::map<std::string, std::string>& images,
                              const std::map<std::string, std::string>& masks, const std::string& image_dir,
                              const std::string& mask_dir, const char* mask_suffix, const char* image_suffix) {
  std::vector<DataItem> items;
  for (const auto& [stem, mask] : masks)
    if (!images.count(stem))
      fail("{}: mask without its image {}", mask, (fs::path(image_dir) / (stem + image_suffix + ".png")).string());
  for (const auto& [stem, image] : images) {
    auto m = masks.find(stem);
    if (m == masks.end())
      fail("{}: image without its mask {}", image, (fs::path(mask_dir) / (stem + mask_suffix + ".png")).string());
    items.push_back({stem, image, m->second});
  }
  return items;
}

std::vector<DataItem> list_bagls(const std::string& dir) {
  std::map<std::string, std::string> images, masks;
  for (const auto& [stem, path] : pngs(dir)) {
    if (stem.size() > 4 && stem.ends_with("_seg"))
      masks[stem.substr(0, stem.size() - 4)] = path;
    else
      images[stem] = path;
  }
  if (images.empty() && masks.empty()) fail("{}: no PNG images found (expected BAGLS-style N.png with N_seg.png)", dir);
  return pair_up(images, masks, dir, dir, "_seg", "");
}

std::vector<DataItem> list_nnunet(const std::string& dir) {
  const std::string idir = (fs::path(dir) / "imagesTr").string(), ldir = (fs::path(dir) / "labelsTr").string();
  check_dir(ldir, "nnU-Net labels (labelsTr)");
  std::map<std::string, std::string> images;
  for (const auto& [stem, path] : pngs(idir)) {
    // CASE_0000 is channel 0 of CASE; other channels are not read (gray input).
    if (stem.size() > 5 && stem[stem.size() - 5] == '_' &&
        std::all_of(stem.end() - 4, stem.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      if (stem.ends_with("_0000")) images[stem.substr(0, stem.size() - 5)] = path;
    } else {
      images[stem] = path;
    }
  }
  const auto masks = pngs(ldir);
  if (images.empty() && masks.empty()) fail("{}: no PNG images found in imagesTr/ and labelsTr/", dir);
  return pair_up(images, masks, idir, ldir, "", "_0000");
}

}  // namespace

const char* folder_layout_name(FolderLayout l) {
  switch (l) {
    case FolderLayout::bagls: return "BAGLS (N.png + N_seg.png)";
    case FolderLayout::nnunet: return "nnU-Net-like (imagesTr/ + labelsTr/)";
    case FolderLayout::image_mask_dirs: return "image and mask folders matched by stem";
  }
  return "?";
}

std::vector<DataItem> list_items(const DataSource& src, FolderLayout* layout) {
  const bool dirs = !src.images_dir.empty() || !src.masks_dir.empty();
  if (dirs == !src.dir.empty()) fail("give either a data folder, or an images folder with a masks folder");
  FolderLayout l;
  std::vector<DataItem> items;
  if (dirs) {
    check_dir(src.images_dir, "images");
    check_dir(src.masks_dir, "masks");
    l = FolderLayout::image_mask_dirs;
    const auto images = pngs(src.images_dir), masks = pngs(src.masks_dir);
    if (images.empty()) fail("{}: no PNG images found", src.images_dir);
    if (masks.empty()) fail("{}: no PNG masks found", src.masks_dir);
    items = pair_up(images, masks, src.images_dir, src.masks_dir, "", "");
  } else {
    check_dir(src.dir, "data");
    l = fs::is_directory(fs::path(src.dir) / "imagesTr") ? FolderLayout::nnunet : FolderLayout::bagls;
    items = l == FolderLayout::nnunet ? list_nnunet(src.dir) : list_bagls(src.dir);
  }
  if (layout) *layout = l;
  return items;
}

std::vector<uint8_t> binarize_mask(const GrayImage& mask, int threshold, const std::string& path) {
  if (mask.wide.empty()) return binarize_mask(mask.pixels, threshold, path);
  // 16-bit: the threshold applies to the 8-bit-scaled values, nonzero to the raw ones.
  if (threshold >= 0) return binarize_mask(mask.pixels, threshold, path);
  std::vector<uint16_t> distinct;
  for (uint16_t v : mask.wide)
    if (std::find(distinct.begin(), distinct.end(), v) == distinct.end() && (distinct.push_back(v), distinct.size() > 2))
      fail("{}: mask is not binary (16-bit, more than two distinct values, e.g. {}, {}, {}); give --mask-threshold T "
           "to take values above T (on a 0-255 scale) as foreground",
           path, distinct[0], distinct[1], distinct[2]);
  std::vector<uint8_t> out(mask.wide.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = mask.wide[i] != 0;
  return out;
}

std::vector<uint8_t> binarize_mask(const std::vector<uint8_t>& values, int threshold, const std::string& path) {
  std::vector<uint8_t> out(values.size());
  if (threshold >= 0) {
    for (size_t i = 0; i < values.size(); ++i) out[i] = values[i] > threshold;
    return out;
  }
  std::array<bool, 256> seen{};
  int distinct = 0;
  for (uint8_t v : values)
    if (!seen[v]) {
      seen[v] = true;
      ++distinct;
    }
  if (distinct > 2) {
    std::string list;
    int shown = 0;
    for (int v = 0; v < 256 && shown < 6; ++v)
      if (seen[size_t(v)]) list += (shown++ ? ", " : "") + std::to_string(v);
    fail("{}: mask is not binary ({} distinct values: {}{}); give --mask-threshold T to take values above T as "
         "foreground",
         path, distinct, list, distinct > 6 ? ", ..." : "");
  }
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i] != 0;
  return out;
}

template <class T>
std::vector<T> pad_centered(const T* src, int sh, int sw, int dh, int dw, int c) {
  std::vector<T> out(size_t(dh) * dw * size_t(c), T(0));
  const int y0 = (dh - sh) / 2, x0 = (dw - sw) / 2;
  for (int y = 0; y < sh; ++y)
    std::copy_n(src + size_t(y) * sw * size_t(c), size_t(sw) * size_t(c),
                out.data() + (size_t(y + y0) * dw + size_t(x0)) * size_t(c));
  return out;
}
template std::vector<uint8_t> pad_centered<uint8_t>(const uint8_t*, int, int, int, int, int);
template std::vector<uint16_t> pad_centered<uint16_t>(const uint16_t*, int, int, int, int, int);

namespace {

// One item read, binarised and fitted to h x w (h == 0: kept at its own size).
struct LoadedItem {
  Image img;
  std::vector<uint8_t> fg;
};

LoadedItem load_item(const DataItem& it, int h, int w, int mask_threshold, Fit fit, int channels) {
  LoadedItem r{read_png(it.image, channels), {}};
  Image& img = r.img;
  GrayImage msk = read_png_gray(it.mask);
  if (img.h != msk.h || img.w != msk.w)
    fail("{}: mask is {}x{} but its image {} is {}x{}", it.mask, msk.h, msk.w, it.image, img.h, img.w);
  r.fg = binarize_mask(msk, mask_threshold, it.mask);
  if (h == 0 || (img.h == h && img.w == w)) return r;
  if (fit == Fit::resize) {
    img.values = resize_bilinear(img.values.data(), img.h, img.w, h, w, channels);
    r.fg = resize_nearest(r.fg.data(), msk.h, msk.w, h, w);
  } else {
    if (img.h > h || img.w > w)
      fail("{}: image of {}x{} is larger than the input {}x{}; padding cannot shrink it (use resizing)", it.image,
           img.h, img.w, h, w);
    img.values = pad_centered(img.values.data(), img.h, img.w, h, w, channels);
    r.fg = pad_centered(r.fg.data(), msk.h, msk.w, h, w);
  }
  img.h = h;
  img.w = w;
  return r;
}

// Whether every value is a whole 8-bit step on the 16-bit scale (v * 257).
bool whole_8bit_steps(const std::vector<uint16_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint16_t x) { return x % 257 == 0; });
}

}  // namespace

Dataset load_items(const std::vector<DataItem>& items, int h, int w, int mask_threshold, Fit fit, int channels) {
  if (items.empty()) fail("no images to load");
  // The first item fixes the size when none is given, and the storage: 8
  // bits while the values are whole 8-bit steps (8-bit files at their own
  // size), else 16. Then every item is decoded straight into its slot, in
  // parallel (decoding dominates: a full BAGLS set is ~56k PNGs), into
  // storage sized once (no growth copies).
  LoadedItem first = load_item(items[0], h, w, mask_threshold, fit, channels);
  Dataset d;
  d.h = first.img.h;
  d.w = first.img.w;
  d.channels = channels;
  for (const DataItem& it : items) d.names.push_back(it.stem);
  const size_t iv = d.image_values();
  const bool eight = whole_8bit_steps(first.img.values);
  if (eight) d.images8.resize(items.size() * iv);
  else d.images16.resize(items.size() * iv);
  d.mask_bits.resize(items.size() * d.mask_bytes());
  // Items that do not fit 8 bits in an 8-bit set wait here, then the set widens.
  std::vector<std::vector<uint16_t>> wide(items.size());
  auto place = [&](size_t i, LoadedItem& r) {
    d.set_mask(i, r.fg.data());  // its own bytes of the bits: items fill in parallel
    if (!eight) {
      std::copy(r.img.values.begin(), r.img.values.end(), d.images16.begin() + std::ptrdiff_t(i * iv));
    } else if (whole_8bit_steps(r.img.values)) {
      for (size_t k = 0; k < iv; ++k) d.images8[i * iv + k] = uint8_t(r.img.values[k] / 257);
    } else {
      wide[i] = std::move(r.img.values);
    }
  };
  place(0, first);
  parallel_for_first_error(1, items.size(), 16, [&](size_t i) {
    LoadedItem r = load_item(items[i], d.h, d.w, mask_threshold, fit, channels);
    place(i, r);
  });
  if (std::any_of(wide.begin(), wide.end(), [](const auto& v) { return !v.empty(); })) {  // a mixed set: 16 bits
    d.images16.resize(items.size() * iv);
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t k = 0; k < iv; ++k)
        d.images16[i * iv + k] = wide[i].empty() ? uint16_t(d.images8[i * iv + k] * 257u) : wide[i][k];
    d.images8 = {};
  }
  return d;
}

namespace {

// The checks load_item makes before it decodes pixels, from every item's
// header (the first failure in item order is reported); returns whether
// every image is an 8-bit file that keeps whole 8-bit steps at h x w (its
// own size, or padded), i.e. whether load_items stores the set in 8 bits.
bool check_headers(const std::vector<DataItem>& items, int h, int w, Fit fit) {
  std::vector<uint8_t> eight(items.size());
  parallel_for_first_error(0, items.size(), 64, [&](size_t i) {
    const DataItem& it = items[i];
    const PngInfo img = read_png_info(it.image), msk = read_png_info(it.mask);
    if (img.h != msk.h || img.w != msk.w)
      fail("{}: mask is {}x{} but its image {} is {}x{}", it.mask, msk.h, msk.w, it.image, img.h, img.w);
    if (fit == Fit::pad && (img.h > h || img.w > w))
      fail("{}: image of {}x{} is larger than the input {}x{}; padding cannot shrink it (use resizing)", it.image,
           img.h, img.w, h, w);
    eight[i] = img.bit_depth == 8 && (fit == Fit::pad || (img.h == h && img.w == w));
  });
  return std::all_of(eight.begin(), eight.end(), [](uint8_t e) { return e != 0; });
}

}  // namespace

Dataset stream_items(const std::vector<DataItem>& items, int h, int w, int mask_threshold, Fit fit, int channels) {
  if (items.empty()) fail("no images to load");
  const LoadedItem first = load_item(items[0], h, w, mask_threshold, fit, channels);
  Dataset d;
  d.h = first.img.h;
  d.w = first.img.w;
  d.channels = channels;
  check_headers(items, d.h, d.w, fit);
  for (const DataItem& it : items) d.names.push_back(it.stem);
  d.files = std::make_shared<const StreamedFiles>(StreamedFiles{items, mask_threshold, fit});
  d.file_of.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) d.file_of[i] = i;
  return d;
}

void read_streamed_item(const Dataset& d, size_t i, float* input, uint8_t* mask) {
  const LoadedItem r =
      load_item(d.files->items.at(d.file_of.at(i)), d.h, d.w, d.files->mask_threshold, d.files->fit, d.channels);
  to_input(r.img.values.data(), r.img.values.size(), input);
  if (mask) std::copy(r.fg.begin(), r.fg.end(), mask);
}

size_t load_bytes(const std::vector<DataItem>& items, int h, int w, Fit fit, int channels) {
  if (items.empty()) return 0;
  if (h == 0) {
    const PngInfo first = read_png_info(items[0].image);
    h = first.h;
    w = first.w;
  }
  const bool eight = check_headers(items, h, w, fit);
  const size_t px = size_t(h) * size_t(w);
  return items.size() * (px * size_t(channels) * (eight ? 1 : 2) + (px + 7) / 8);
}

Dataset load_dataset(const DataSource& src, int h, int w) {
  return load_items(list_items(src), h, w, src.mask_threshold, src.fit, src.channels);
}

Dataset load_bagls_folder(const std::string& dir, int h, int w) {
  DataSource src;
  src.dir = dir;
  return load_dataset(src, h, w);
}

}  // namespace mixseg

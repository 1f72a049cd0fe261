// Reading a dataset from the folder layouts researchers already have:
//   BAGLS:        DIR/N.png with its mask DIR/N_seg.png
//   nnU-Net-like: DIR/imagesTr/CASE_0000.png (or CASE.png) with its mask
//                 DIR/labelsTr/CASE.png (DIR/imagesTs, images without masks,
//                 is for prediction and ignored here)
//   two folders:  --images DIR and --masks DIR, matched by file stem
// A folder given as --data is recognised by its contents (imagesTr/ means
// nnU-Net-like). Masks: nonzero is foreground; a mask with more than two
// distinct values is refused with a clear error unless a threshold is given
// (foreground = value > threshold). Every error names the file.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/png_io.h"

namespace mixseg {

enum class FolderLayout { bagls, nnunet, image_mask_dirs };
const char* folder_layout_name(FolderLayout l);

// How images of another size than the network's input are brought to it.
enum class Fit {
  resize,  // bilinear for images, nearest for masks
  pad,     // centred on a zero (background) canvas; larger images are refused
};

struct DataSource {
  std::string dir;                  // BAGLS or nnU-Net-like folder
  std::string images_dir, masks_dir;  // or two folders matched by stem
  int mask_threshold = -1;          // -1: masks must be binary; else foreground = value > threshold
  Fit fit = Fit::resize;
  int channels = 1;                 // images read as gray (1) or RGB (3)
};

struct DataItem {
  std::string stem, image, mask;  // file stem, image path, mask path
};

// The (image, mask) pairs of a source, sorted by stem, with the layout found.
std::vector<DataItem> list_items(const DataSource& src, FolderLayout* layout = nullptr);

// Reads the items at h x w (0 x 0: the first image's size; others are then
// fitted to it like any size mismatch), fitting each image and mask by `fit`.
Dataset load_items(const std::vector<DataItem>& items, int h, int w, int mask_threshold = -1, Fit fit = Fit::resize,
                   int channels = 1);

// Places src (sh x sw x c) centred on a zero canvas of dh x dw (dh >= sh, dw >= sw).
template <class T>
std::vector<T> pad_centered(const T* src, int sh, int sw, int dh, int dw, int c = 1);

// The files behind a streamed set, and how each is fitted to the set's size.
struct StreamedFiles {
  std::vector<DataItem> items;
  int mask_threshold = -1;
  Fit fit = Fit::resize;
};

// The same set as load_items without decoding it: a streamed Dataset whose
// reads decode the files (the same values as load_items gives). The first
// item is decoded (it fixes the size when h == 0) and every file's header
// is checked here (readable PNG, mask and image sizes agree, nothing too
// large to pad), so a broken folder fails now, not hours into training; a
// mask found non-binary is only seen when it is read.
Dataset stream_items(const std::vector<DataItem>& items, int h, int w, int mask_threshold = -1, Fit fit = Fit::resize,
                     int channels = 1);

// Decodes item i of a streamed set into network input (image values of
// d.channels per pixel) and, unless null, its mask.
void read_streamed_item(const Dataset& d, size_t i, float* input, uint8_t* mask);

// The bytes load_items would hold for these items at h x w (0 x 0: the
// first image's size), from every file's header (checked as stream_items
// checks them): a mask bit a pixel, and 1 byte a value when every image is
// an 8-bit file kept at its size or padded, else 2 (an upper bound: a
// resized image whose values all land on 8-bit steps would not widen the set).
size_t load_bytes(const std::vector<DataItem>& items, int h, int w, Fit fit, int channels);

// list_items + load_items.
Dataset load_dataset(const DataSource& src, int h, int w);

// A BAGLS folder (kept for callers that know the layout).
Dataset load_bagls_folder(const std::string& dir, int h, int w);

// Foreground (0/1) from an 8-bit mask: nonzero, or value > threshold when
// threshold >= 0. Throws naming `path` for a non-binary mask without a threshold.
std::vector<uint8_t> binarize_mask(const std::vector<uint8_t>& values, int threshold, const std::string& path);
// The same for a mask as read: 16-bit masks are judged on their raw values
// (a label of 1 is foreground); a threshold applies on the 0-255 scale.
std::vector<uint8_t> binarize_mask(const GrayImage& mask, int threshold, const std::string& path);

}  // namespace mixseg

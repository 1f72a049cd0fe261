// Embedding mixseg: load a checkpoint and segment one 8-bit gray image.
// Usage: mixseg_example CHECKPOINT [HEIGHT WIDTH]
// Without an image file it segments a synthetic gradient frame and prints the
// model's description and the foreground fraction, so it runs anywhere.
#include <mixseg/mixseg.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT [HEIGHT WIDTH]\n", argv[0]);
    return 2;
  }
  try {
    mixseg::Predictor predictor = mixseg::Predictor::load(argv[1]);
    const mixseg::ModelInfo info = predictor.info();
    const int h = argc > 3 ? std::atoi(argv[2]) : info.height;
    const int w = argc > 3 ? std::atoi(argv[3]) : info.width;
    std::vector<uint8_t> image(size_t(h) * w);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) image[size_t(y) * w + x] = uint8_t((x * 255) / (w > 1 ? w - 1 : 1));
    const std::vector<uint8_t> mask = predictor.mask(image.data(), h, w);
    size_t fg = 0;
    for (uint8_t m : mask) fg += m;
    std::printf("mixseg %s: U-Net f=%d depth=%d trained at %dx%d (%s), %zu parameters\n", mixseg::version(),
                info.filters, info.depth, info.height, info.width, info.trained_precision.c_str(), info.parameters);
    std::printf("segmented a %dx%d image: %zu of %zu pixels foreground\n", h, w, fg, mask.size());
    return 0;
  } catch (const mixseg::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

// Reading whole files (core/file_util.h): contents byte for byte across the
// reader's chunk boundary, empty files, and errors that name the path and say
// why (no such file, a folder) for every reader built on it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/file_util.h"
#include "data/npy.h"
#include "test_util.h"

using namespace mixseg;
using mixseg::test::expect_error_containing;
using mixseg::test::temp_dir;

namespace {

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 131 + i / 251) & 0xFF);  // not periodic in the chunk size
  return v;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size()));
  ASSERT_TRUE(f.good()) << path;
}

}  // namespace

TEST(FileRead, ContentsAcrossTheChunkBoundary) {
  const auto dir = temp_dir("file_read");
  // The reader takes 1 MiB at a time: sizes around one and two chunks.
  for (size_t n : {size_t(0), size_t(1), size_t(1000), (size_t(1) << 20) - 1, size_t(1) << 20, (size_t(1) << 20) + 1,
                   (size_t(2) << 20) + 7}) {
    const std::string path = (dir / ("f" + std::to_string(n))).string();
    const std::vector<uint8_t> want = pattern(n);
    write_bytes(path, want);
    EXPECT_EQ(read_file_bytes(path), want) << n << " bytes";
    const std::string text = read_file_text(path);
    ASSERT_EQ(text.size(), n);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), reinterpret_cast<const uint8_t*>(text.data()))) << n;
  }
  std::filesystem::remove_all(dir);
}

TEST(FileRead, MissingFilesAndFoldersAreNamed) {
  const auto dir = temp_dir("file_read_errors");
  const std::string missing = (dir / "missing.npy").string(), folder = dir.string();
  expect_error_containing([&] { read_file_bytes(missing); }, missing + ": no such file");
  expect_error_containing([&] { read_file_text(folder); }, folder + ": is a folder");
  expect_error_containing([&] { check_readable_file(folder); }, folder + ": is a folder");
  // A parser never sees the empty read a folder gives a stream (before, a
  // folder came out as "not a .npy file").
  expect_error_containing([&] { read_npy(folder); }, folder + ": is a folder");
  std::filesystem::remove_all(dir);
}

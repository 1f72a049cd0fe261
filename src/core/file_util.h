// Files in and out. Reading: the whole file, or an error that names it and
// says why (no such file, a folder, not readable, a read error) instead of
// the stream library's exception or an empty read that a parser would call
// malformed. Writing: so that a crash or a full disk never leaves a
// half-written file in place of a good one: write a temporary file next to
// the target, fsync it, rename it over the target, fsync the folder.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mixseg {

// Throws, naming the path, unless it is an existing file other than a folder
// (a regular file, or a pipe or device a user may pass) that can be opened.
void check_readable_file(const std::string& path);

// The whole file's contents (check_readable_file's errors, or a read error).
std::vector<uint8_t> read_file_bytes(const std::string& path);
std::string read_file_text(const std::string& path);

// Calls write(tmp_path), which must create and fill tmp_path; then makes it
// durable and renames it to path. On any error the temporary file is removed
// and the original file at path is left untouched.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

// Creates the folder (and parents) or throws naming it; checks it is writable.
void ensure_writable_dir(const std::string& dir);

}  // namespace mixseg

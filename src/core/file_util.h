// Writing files so that a crash or a full disk never leaves a half-written
// file in place of a good one: write a temporary file next to the target,
// fsync it, rename it over the target, fsync the folder.
#pragma once
#include <functional>
#include <string>

namespace mixseg {

// Calls write(tmp_path), which must create and fill tmp_path; then makes it
// durable and renames it to path. On any error the temporary file is removed
// and the original file at path is left untouched.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

// Creates the folder (and parents) or throws naming it; checks it is writable.
void ensure_writable_dir(const std::string& dir);

}  // namespace mixseg

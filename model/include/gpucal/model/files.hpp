// Every file gpucal reads or writes goes through these: inputs are regular
// files of bounded size, outputs appear whole or not at all.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gpucal::model {

/// The bytes of `path`, a regular file no larger than limits::input_file_bytes.
/// Throws input_error naming `what` (the flag or file role) and the path when
/// it is missing, unreadable, a folder, a device or pipe (/dev/zero), or too
/// large, so no input can make gpucal read without end.
std::string read_input_file(const std::string& path, std::string_view what);

/// Writes `text` to `path` through a temporary file in the same folder and a
/// rename: readers see the old file or the new one. Creates missing folders.
/// Throws input_error naming `what` and the path when it cannot (the
/// temporary file is removed).
void write_file_atomic(const std::string& path, const std::string& text, std::string_view what = "output");

/// Writes `text` to the first of `candidates` that does not exist yet, never
/// replacing a file, and returns it. Folders it had to create are removed
/// again if it fails. Throws input_error naming `what` when it cannot.
std::string write_new_file(const std::vector<std::string>& candidates, const std::string& text, std::string_view what);

/// Writes every (path, text) pair, or none of them: the files of an export
/// appear together. Throws input_error naming `what` when one cannot be written.
void write_files_together(const std::vector<std::pair<std::string, std::string>>& files, std::string_view what);

}  // namespace gpucal::model

// Reading inputs and writing outputs (see files.hpp).
#include "gpucal/model/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"

namespace gpucal::model {

namespace fs = std::filesystem;

namespace {

std::string reason(int err) { return std::strerror(err); }

// A path as messages show it: a very long one keeps its head and tail.
std::string shown(std::string_view path) {
  if (path.size() <= 160) return std::string(path);
  return fmt::format("{}...{}", path.substr(0, 100), path.substr(path.size() - 50));
}

// Closes a descriptor on every path out.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// Creates the missing folders above `file`; returns the topmost one it created (empty if none).
fs::path create_parents(const fs::path& file, std::string_view what) {
  const fs::path parent = file.parent_path();
  if (parent.empty()) return {};
  fs::path top;
  std::error_code ec;
  for (fs::path p = parent; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    top = p;
    if (p == p.parent_path()) break;
  }
  fs::create_directories(parent, ec);
  if (ec || !fs::is_directory(parent, ec))
    throw input_error(fmt::format("{}: cannot create folder '{}' ({})", what, parent.string(),
                                  ec ? ec.message() : "a file of that name exists"));
  return top;
}

// Writes `text` into a new temporary file beside `target`; returns its path.
fs::path write_temporary(const fs::path& target, const std::string& text, std::string_view what) {
  std::string hidden(1, '.');  // ".NAME.XXXXXX" (built by appends: GCC 12 warns falsely on "." + name)
  hidden.append(target.filename().string()).append(".XXXXXX");
  std::string pattern = (target.parent_path() / hidden).string();
  fd_guard f{::mkstemp(pattern.data())};
  if (f.fd < 0)
    throw input_error(fmt::format("{}: cannot write '{}' ({})", what, target.string(), reason(errno)));
  const fs::path tmp(pattern);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(f.fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::unlink(tmp.c_str());
      throw input_error(fmt::format("{}: cannot write '{}' ({})", what, target.string(), reason(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  // mkstemp makes the file private; give it the mode a plain open() would (0666 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(f.fd, 0666 & ~mask);
  if (::fsync(f.fd) != 0 || ::close(f.fd) != 0) {
    const int err = errno;
    f.fd = -1;
    ::unlink(tmp.c_str());
    throw input_error(fmt::format("{}: cannot write '{}' ({})", what, target.string(), reason(err)));
  }
  f.fd = -1;
  return tmp;
}

void remove_created(const fs::path& top) {
  std::error_code ec;
  if (!top.empty()) fs::remove_all(top, ec);
}

}  // namespace

std::string read_input_file(const std::string& path, std::string_view what) {
  if (path.empty()) throw input_error(fmt::format("{}: the path is empty", what));
  fd_guard f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  const auto cannot_read = [&](int err) {
    return input_error(fmt::format("{}: cannot read '{}' ({})", what, shown(path), reason(err)));
  };
  if (f.fd < 0) throw cannot_read(errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw cannot_read(errno);
  if (S_ISDIR(st.st_mode)) throw input_error(fmt::format("{}: '{}' is a folder, not a file", what, shown(path)));
  if (!S_ISREG(st.st_mode))
    throw input_error(fmt::format("{}: '{}' is not a regular file (a device, pipe or socket cannot be read)", what, shown(path)));
  const auto cap = static_cast<std::size_t>(limits::input_file_bytes);
  if (static_cast<std::uint64_t>(st.st_size) > cap)
    throw input_error(fmt::format("{}: '{}' is {} bytes; the limit is {} MiB", what, shown(path), st.st_size, cap >> 20));
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  for (;;) {
    if (done == text.size()) {
      if (text.size() > cap) break;
      text.resize(std::min(cap + 1, text.size() + 4096));  // the file may have grown since fstat
    }
    const ssize_t n = ::read(f.fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw cannot_read(errno);
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  if (done > cap) throw input_error(fmt::format("{}: '{}' is larger than the {} MiB limit", what, shown(path), cap >> 20));
  text.resize(done);
  return text;
}

void write_file_atomic(const std::string& path, const std::string& text, std::string_view what) {
  if (path.empty()) throw input_error(fmt::format("{}: the path is empty", what));
  const fs::path target(path);
  std::error_code ec;
  if (fs::is_directory(target, ec)) throw input_error(fmt::format("{}: '{}' is a folder", what, path));
  const fs::path created = create_parents(target, what);
  fs::path tmp;
  try {
    tmp = write_temporary(target, text, what);
  } catch (...) {
    remove_created(created);
    throw;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    remove_created(created);
    throw input_error(fmt::format("{}: cannot write '{}' ({})", what, path, reason(err)));
  }
}

std::string write_new_file(const std::vector<std::string>& candidates, const std::string& text, std::string_view what) {
  if (candidates.empty() || candidates.front().empty()) throw input_error(fmt::format("{}: the path is empty", what));
  const fs::path first(candidates.front());
  const fs::path created = create_parents(first, what);
  fs::path tmp;
  try {
    tmp = write_temporary(first, text, what);
  } catch (...) {
    remove_created(created);
    throw;
  }
  for (const auto& c : candidates) {
    // link() fails with EEXIST instead of replacing: no file is ever overwritten.
    if (::link(tmp.c_str(), c.c_str()) == 0) {
      ::unlink(tmp.c_str());
      return c;
    }
    if (errno != EEXIST) {
      const int err = errno;
      ::unlink(tmp.c_str());
      remove_created(created);
      throw input_error(fmt::format("{}: cannot write '{}' ({})", what, c, reason(err)));
    }
  }
  ::unlink(tmp.c_str());
  remove_created(created);
  throw input_error(fmt::format("{}: '{}' and its {} numbered successors all exist", what, candidates.front(),
                                candidates.size() - 1));
}

void write_files_together(const std::vector<std::pair<std::string, std::string>>& files, std::string_view what) {
  // Every temporary first; renames only once all are written, and undone if one fails.
  std::vector<fs::path> created, temporaries;
  const auto undo = [&] {
    for (const auto& t : temporaries) ::unlink(t.c_str());
    for (const auto& c : created) remove_created(c);
  };
  try {
    for (const auto& [path, text] : files) {
      if (path.empty()) throw input_error(fmt::format("{}: the path is empty", what));
      std::error_code ec;
      if (fs::is_directory(path, ec)) throw input_error(fmt::format("{}: '{}' is a folder", what, path));
      created.push_back(create_parents(fs::path(path), what));
      temporaries.push_back(write_temporary(fs::path(path), text, what));
    }
  } catch (...) {
    undo();
    throw;
  }
  std::vector<std::size_t> renamed_new;  // files that did not exist before: removed again on failure
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    const bool existed = fs::exists(files[i].first, ec);
    if (::rename(temporaries[i].c_str(), files[i].first.c_str()) != 0) {
      const int err = errno;
      for (std::size_t j : renamed_new) ::unlink(files[j].first.c_str());
      temporaries.erase(temporaries.begin(), temporaries.begin() + static_cast<std::ptrdiff_t>(i));
      undo();
      throw input_error(fmt::format("{}: cannot write '{}' ({})", what, files[i].first, reason(err)));
    }
    if (!existed) renamed_new.push_back(i);
  }
}

}  // namespace gpucal::model

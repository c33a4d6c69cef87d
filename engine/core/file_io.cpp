#include "engine/core/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/core/error.h"

namespace day18 {
namespace fs = std::filesystem;

void require_writable_path(const std::string& path, std::string_view what) {
  DAY18_REQUIRE(!path.empty(), what, ": the output path is empty");
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  DAY18_REQUIRE(fs::is_directory(dir, ec), what, ": cannot write '", path, "': the folder '",
                dir.string(), "' does not exist");
  DAY18_REQUIRE(!fs::is_directory(p, ec), what, ": cannot write '", path, "': it is a folder");
}

void require_distinct_paths(
    const std::vector<std::pair<std::string_view, std::string>>& flag_paths) {
  std::vector<std::pair<std::string_view, fs::path>> seen;
  for (const auto& [flag, path] : flag_paths) {
    if (path.empty()) continue;
    std::error_code ec;
    fs::path norm = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec) norm = fs::absolute(path).lexically_normal();
    for (const auto& [other_flag, other] : seen)
      DAY18_REQUIRE(norm != other, flag, ": '", path, "' is also the ", other_flag,
                    " file; give another name");
    seen.emplace_back(flag, norm);
  }
}

std::string unreadable_reason(const std::string& path) {
  if (path.empty()) return "the path is empty";
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return "no such file";
  if (fs::is_directory(st)) return "it is a folder, not a file";
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::strerror(errno);
  return "";
}

std::ifstream open_input_file(const std::string& path, std::string_view what) {
  const std::string why = unreadable_reason(path);
  DAY18_REQUIRE(why.empty(), what, " ", path, ": cannot read it: ", why);
  return std::ifstream(path, std::ios::binary);
}

void write_file_atomically(const std::string& path, std::string_view what,
                           const std::function<void(std::ostream&)>& write) {
  require_writable_path(path, what);
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");

  // A new file that only this call knows (O_EXCL): never a file the user already has.
  const std::string tmpl = (dir / (p.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  DAY18_REQUIRE(fd >= 0, what, ": cannot write '", path, "': cannot create a file in '",
                dir.string(), "' (", std::strerror(errno), ")");
  const std::string tmp(name.data());
  // The mode a plain open() would have given (mkstemp makes it 0600).
  const mode_t mask = umask(0);
  umask(mask);
  (void)fchmod(fd, 0666 & ~mask);
  ::close(fd);

  struct RemoveOnFailure {
    const std::string& p;
    bool armed = true;
    ~RemoveOnFailure() {
      if (armed) ::unlink(p.c_str());
    }
  } cleanup{tmp};
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DAY18_REQUIRE(out.good(), what, ": cannot write '", path, "' (opening '", tmp, "' failed)");
    write(out);  // may throw: the temporary file is removed
    out.flush();
    DAY18_REQUIRE(out.good(), what, ": writing '", path, "' failed (disk full?)");
  }
  DAY18_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, what, ": cannot write '", path,
                "': renaming the temporary file failed (", std::strerror(errno), ")");
  cleanup.armed = false;
}

}  // namespace day18

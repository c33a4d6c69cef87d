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

void write_file_atomically(const std::string& path, std::string_view what,
                           const std::function<void(std::ostream&)>& write) {
  DAY18_REQUIRE(!path.empty(), what, ": the output path is empty");
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  DAY18_REQUIRE(fs::is_directory(dir, ec), what, ": cannot write '", path, "': the folder '",
                dir.string(), "' does not exist");
  DAY18_REQUIRE(!fs::is_directory(p, ec), what, ": cannot write '", path, "': it is a folder");

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

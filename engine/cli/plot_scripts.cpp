#include "engine/cli/plot_scripts.h"

#include <system_error>
#include <vector>

namespace day18::cli {

namespace fs = std::filesystem;

fs::path find_script(const char* name) {
  std::vector<fs::path> roots = {fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    roots.push_back(exe.parent_path().parent_path().parent_path());
    roots.push_back(exe.parent_path().parent_path());
  }
  for (const fs::path& r : roots)
    if (fs::exists(r / "scripts" / name)) return r / "scripts" / name;
  return {};
}

std::string plot_python(const fs::path& script) {
  const fs::path venv = script.parent_path().parent_path() / ".venv" / "bin" / "python";
  return fs::exists(venv) ? venv.string() : "python3";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace day18::cli

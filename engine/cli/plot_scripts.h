// How a day18 command runs one of the repository's Python plot scripts (scripts/plot_*.py):
// find the script, pick the interpreter that has matplotlib, quote the arguments for the shell.
// Used by `day18 analyze --roofline`, `day18 tune show --plot` and `day18 report`.
#pragma once

#include <filesystem>
#include <string>

namespace day18::cli {

// scripts/<name> of the repository, looked up from the working directory, then from the
// executable's place (build*/engine/day18, build*/labs/day18_labNN); empty when not found.
std::filesystem::path find_script(const char* name);

// The repository's .venv python beside `script` (scripts/lab setup makes it, with matplotlib),
// else "python3".
std::string plot_python(const std::filesystem::path& script);

// `s` as one single-quoted shell word.
std::string shell_quote(const std::string& s);

}  // namespace day18::cli

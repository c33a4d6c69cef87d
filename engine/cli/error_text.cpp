#include "engine/cli/error_text.h"

#include <new>
#include <nlohmann/json.hpp>
#include <regex>

#include "engine/core/error.h"

namespace day18::cli {

std::string user_message(std::string_view what, bool verbose) {
  std::string s(what);
  if (verbose) return s;
  // A source path: letters, digits and ._/+- ending in a C++/CUDA extension, then :line.
  static const std::regex trailing(R"( \[[A-Za-z0-9_./+-]+\.(?:cpp|cu|h|cuh|hpp):[0-9]+\])");
  static const std::regex leading(R"((^|\n)[A-Za-z0-9_./+-]+\.(?:cpp|cu|h|cuh|hpp):[0-9]+: )");
  s = std::regex_replace(s, trailing, "");
  s = std::regex_replace(s, leading, "$1");
  return s;
}

FailureText describe_failure(const std::exception& e, bool verbose) {
  if (dynamic_cast<const Error*>(&e))
    return {"day18: error: " + user_message(e.what(), verbose), 2};
  if (dynamic_cast<const std::bad_alloc*>(&e))
    return {"day18: error: out of host memory (std::bad_alloc): the run needs more RAM than this "
            "machine can give; try a smaller --preset, fewer --requests or a shorter context",
            3};
  if (const auto* j = dynamic_cast<const nlohmann::json::exception*>(&e))
    return {"day18: error: a JSON input has the wrong structure (" +
                json_library_message(j->what()) +
                "): check that the file is the kind the flag asks for (e.g. --roof takes the "
                "JSON of `day18 calibrate --json` or `day18 probe --json`)",
            3};
  return {std::string("day18: unexpected error: ") + user_message(e.what(), verbose), 3};
}

}  // namespace day18::cli

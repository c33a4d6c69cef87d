#include "engine/core/parse.h"

#include <charconv>
#include <limits>
#include <system_error>

#include "engine/core/error.h"

namespace day18 {
namespace {

// The value, or why not: 0 = ok, 1 = not an integer, 2 = does not fit int64.
int try_parse(std::string_view s, int64_t& v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return 1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) return 2;
  if (ec != std::errc() || end != s.data() + s.size()) return 1;
  return 0;
}

}  // namespace

bool try_parse_int(std::string_view text, int64_t& value) {
  return try_parse(text, value) == 0;
}

bool try_parse_uint(std::string_view s, uint64_t& value) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && end == s.data() + s.size();
}

int64_t parse_int(std::string_view what, std::string_view text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const int r = try_parse(text, v);
  DAY18_REQUIRE(r != 1, what, ": '", text, "' is not an integer");
  DAY18_REQUIRE(r == 0 && v >= lo && v <= hi, what, ": ", text, " is out of range [", lo, ", ", hi,
                "]");
  return v;
}

std::pair<int64_t, int64_t> parse_int_range(std::string_view what, std::string_view text,
                                            int64_t lo_bound, int64_t hi_bound) {
  const size_t c = text.find(':');
  int64_t lo = 0, hi = 0;
  const bool ok =
      try_parse(text.substr(0, c), lo) == 0 &&
      (c == std::string_view::npos ? (hi = lo, true) : try_parse(text.substr(c + 1), hi) == 0);
  DAY18_REQUIRE(ok, what, ": '", text, "' is not N or LO:HI (integers, e.g. 32 or 32:512)");
  DAY18_REQUIRE(lo <= hi, what, ": '", text, "': LO must be <= HI");
  DAY18_REQUIRE(lo >= lo_bound && hi <= hi_bound, what, ": '", text, "' is out of range [",
                lo_bound, ", ", hi_bound, "]");
  return {lo, hi};
}

std::vector<int32_t> parse_token_ids(std::string_view what, std::string_view text,
                                     bool allow_empty) {
  std::vector<int32_t> ids;
  auto is_sep = [](char ch) {
    return ch == ',' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
  };
  size_t i = 0;
  while (i < text.size()) {
    if (is_sep(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !is_sep(text[j])) ++j;
    const std::string_view item = text.substr(i, j - i);
    int64_t v = 0;
    const int r = try_parse(item, v);
    DAY18_REQUIRE(r == 0 && v >= 0 && v <= std::numeric_limits<int32_t>::max(), what, ": '", item,
                  "' at position ", ids.size(), " is not a token id (an integer in [0, ",
                  std::numeric_limits<int32_t>::max(), "])");
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  DAY18_REQUIRE(allow_empty || !ids.empty(), what, ": no token ids in '", text,
                "' (give comma-separated ids, e.g. 1,15,22)");
  return ids;
}

}  // namespace day18

// Strict parsing of the numbers a user types (command-line values, prompt files): the whole text
// must be the number, and it must fit the range, or the call throws InvalidArgument naming `what`
// (the flag, e.g. "--prompt-len") and the text exactly as given. Nothing is silently truncated
// ("5x" is not 5), dropped ("abc" is not skipped) or wrapped (4294967297 is not 1).
//
//   int64_t n = parse_int("--requests", "64", 1, 1000000);
//   auto [lo, hi] = parse_int_range("--prompt-len", "32:512", 1, max_len - 1);   // "N" or "LO:HI"
//   std::vector<int32_t> ids = parse_token_ids("--prompt-ids", "1,15,22");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace day18 {

// A decimal integer (optional leading '-' or '+'; no spaces, no trailing characters) in [lo, hi].
int64_t parse_int(std::string_view what, std::string_view text, int64_t lo, int64_t hi);

// The non-throwing cores (CLI11 validators use them): true and the value when the whole text is
// a decimal integer that fits the type.
bool try_parse_int(std::string_view text, int64_t& value);
bool try_parse_uint(std::string_view text, uint64_t& value);  // no sign at all

// "N" (lo == hi == N) or "LO:HI" with lo_bound <= LO <= HI <= hi_bound.
std::pair<int64_t, int64_t> parse_int_range(std::string_view what, std::string_view text,
                                            int64_t lo_bound, int64_t hi_bound);

// Token ids separated by commas and/or whitespace ("1,15,22", "1 15 22"), each in [0, 2^31 - 1]
// (token ids are int32). Empty items between separators are skipped; a non-number is an error
// naming the item and its position. At least one id unless allow_empty.
std::vector<int32_t> parse_token_ids(std::string_view what, std::string_view text,
                                     bool allow_empty = false);

}  // namespace day18

// Strict number parsing (engine/core/parse.h): what a user types is the number, entirely, within
// its range, or the error names the flag and the text as typed. Regressions: "5x" was read as 5,
// "abc" was dropped from a prompt, 4294967297 became token 1.
#include <gtest/gtest.h>

#include "engine/core/error.h"
#include "engine/core/parse.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

TEST(Parse, IntegersMustBeWholeAndInRange) {
  EXPECT_EQ(parse_int("--n", "42", 0, 100), 42);
  EXPECT_EQ(parse_int("--n", "-7", -10, 10), -7);
  EXPECT_EQ(parse_int("--n", "+7", 0, 10), 7);
  EXPECT_THROW_WITH(parse_int("--n", "5x", 0, 100), InvalidArgument, "--n", "'5x'",
                    "not an integer");
  EXPECT_THROW_WITH(parse_int("--n", "", 0, 100), InvalidArgument, "--n", "not an integer");
  EXPECT_THROW_WITH(parse_int("--n", " 5", 0, 100), InvalidArgument, "' 5'", "not an integer");
  EXPECT_THROW_WITH(parse_int("--n", "1e3", 0, 10000), InvalidArgument, "'1e3'");
  EXPECT_THROW_WITH(parse_int("--n", "101", 0, 100), InvalidArgument, "--n", "101",
                    "out of range [0, 100]");
  EXPECT_THROW_WITH(parse_int("--n", "99999999999999999999", 0, 100), InvalidArgument,
                    "99999999999999999999", "out of range");
}

TEST(Parse, RangesAreNOrLoColonHi) {
  EXPECT_EQ(parse_int_range("--len", "32", 1, 100), std::make_pair(int64_t{32}, int64_t{32}));
  EXPECT_EQ(parse_int_range("--len", "8:64", 1, 100), std::make_pair(int64_t{8}, int64_t{64}));
  for (const char* bad : {"5x", "8:", ":8", "8:9:10", "a:b", "8-64", ""})
    EXPECT_THROW_WITH(parse_int_range("--len", bad, 1, 100), InvalidArgument, "--len",
                      "is not N or LO:HI");
  EXPECT_THROW_WITH(parse_int_range("--len", "64:8", 1, 100), InvalidArgument, "LO must be <= HI");
  EXPECT_THROW_WITH(parse_int_range("--len", "0", 1, 100), InvalidArgument, "'0'",
                    "out of range [1, 100]");
  EXPECT_THROW_WITH(parse_int_range("--len", "4294967297", 1, 2048), InvalidArgument,
                    "'4294967297'", "out of range [1, 2048]");
}

TEST(Parse, TokenIdsAreStrictInt32) {
  EXPECT_EQ(parse_token_ids("--ids", "1,15,22"), (std::vector<int32_t>{1, 15, 22}));
  EXPECT_EQ(parse_token_ids("--ids", " 1 15,,22\t"), (std::vector<int32_t>{1, 15, 22}));
  EXPECT_EQ(parse_token_ids("--ids", "2147483647"), (std::vector<int32_t>{2147483647}));
  EXPECT_THROW_WITH(parse_token_ids("--ids", "1,5x"), InvalidArgument, "--ids", "'5x'",
                    "position 1");
  EXPECT_THROW_WITH(parse_token_ids("--ids", "abc 3"), InvalidArgument, "'abc'", "position 0");
  EXPECT_THROW_WITH(parse_token_ids("--ids", "4294967297"), InvalidArgument, "'4294967297'",
                    "not a token id");
  EXPECT_THROW_WITH(parse_token_ids("--ids", "-1"), InvalidArgument, "'-1'", "not a token id");
  EXPECT_THROW_WITH(parse_token_ids("--ids", " , "), InvalidArgument, "--ids", "no token ids");
  EXPECT_TRUE(parse_token_ids("--ids", "", /*allow_empty=*/true).empty());
}

TEST(Parse, TryParseNeverThrows) {
  int64_t v = 0;
  uint64_t u = 0;
  EXPECT_TRUE(try_parse_int("-12", v));
  EXPECT_EQ(v, -12);
  EXPECT_FALSE(try_parse_int("12 ", v));
  EXPECT_TRUE(try_parse_uint("18446744073709551615", u));
  EXPECT_EQ(u, 18446744073709551615ull);
  EXPECT_FALSE(try_parse_uint("18446744073709551616", u));  // 2^64 does not wrap to 0
  EXPECT_FALSE(try_parse_uint("-1", u));
  EXPECT_FALSE(try_parse_uint("+1", u));
}

}  // namespace
}  // namespace day18

// EXPECT_THROW_WITH(statement, ExceptionType, "substring", ...): the statement throws that type
// and its message contains every substring (so a test pins down that an error names the argument
// and the offending value, not just that something threw).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace day18::testing {

template <typename E, typename F>
::testing::AssertionResult throws_with(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const char* p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << msg;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a different exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace day18::testing

#define EXPECT_THROW_WITH(stmt, type, ...) \
  EXPECT_TRUE(::day18::testing::throws_with<type>([&] { stmt; }, {__VA_ARGS__}))

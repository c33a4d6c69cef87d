#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "engine/core/build_info.h"
#include "engine/profiling/bandwidth.h"
#include "tests/labs/support/lab.h"

namespace day18::lab {
namespace {

struct SuiteName {
  std::string lab;
  int task = 0;
  std::string name;
};

SuiteName parse_suite(const std::string& suite) {
  static const std::regex re(R"(Lab(\d\d)_Task(\d+)_(\w+))");
  std::smatch m;
  SuiteName s;
  if (std::regex_match(suite, m, re)) {
    s.lab = m[1];
    s.task = std::stoi(m[2]);
    s.name = m[3];
  }
  return s;
}

SuiteName current() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? parse_suite(info->test_suite_name()) : SuiteName{};
}

}  // namespace

std::string current_lab() { return current().lab; }
int current_task() { return current().task; }

std::string not_implemented_message(const std::string& why) {
  const SuiteName s = current();
  return detail::concat("lab ", s.lab, " task ", s.task, " (", s.name,
                        ") not implemented yet: ", why);
}

bool still_poisoned(const Tensor& t_any) {
  OwnedTensor t = testing::to_host(t_any);
  if (t.numel() == 0) return false;
  if (is_floating(t.dtype())) {
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isnan(host_get(t.view(), i))) return false;
    return true;
  }
  const auto* b = static_cast<const unsigned char*>(t.data());
  for (size_t i = 0; i < t.nbytes(); ++i)
    if (b[i] != 0xFF) return false;
  return true;
}

::testing::AssertionResult lab_close(const char* a_expr, const char* e_expr, const char*,
                                     const Tensor& actual, const Tensor& expected, Tolerance tol) {
  OwnedTensor a = testing::to_host(actual), e = testing::to_host(expected);
  if (a.sizes() != e.sizes())
    return ::testing::AssertionFailure() << a_expr << " has shape " << a.view().describe()
                                         << " but " << e_expr << " is " << e.view().describe();
  if (still_poisoned(a.view()) && !still_poisoned(e.view()))
    return ::testing::AssertionFailure() << not_implemented_message(
               detail::concat(a_expr, " still holds the poison (NaN / 0xFF bytes) written before "
                              "the launch: nothing was written to it"));
  CompareResult r = compare_tensors(a.view(), e.view(), tol, 6);
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << a_expr << " vs " << e_expr << " (atol " << tol.atol << ", rtol " << tol.rtol
         << "): " << r.report;
}

bool timing_requested() {
  const char* v = std::getenv("DAY18_LAB_TIMING");
  return v && std::string(v) == "1";
}

void record_timing(const TimingRecord& r) {
  const double p = peak_d2d_bandwidth();  // bytes/s, measured once in this process
  const double gbps = r.bytes > 0 && r.median_ms > 0 ? r.bytes / (r.median_ms * 1e-3) / 1e9 : 0;
  nlohmann::json j = {{"lab", current_lab()},
                      {"task", current_task()},
                      {"build", build_kind()},
                      {"key", r.key},
                      {"median_ms", r.median_ms},
                      {"p20_ms", r.p20_ms},
                      {"p80_ms", r.p80_ms},
                      {"bytes", r.bytes},
                      {"gbps", gbps},
                      {"p_gbps", p / 1e9},
                      {"pct_of_p", p > 0 ? 100.0 * gbps * 1e9 / p : 0.0},
                      {"commit", git_commit()}};
  std::printf("[ timing   ] %s: median %.4f ms (p20 %.4f, p80 %.4f)%s\n", r.key.c_str(),
              r.median_ms, r.p20_ms, r.p80_ms,
              gbps > 0 ? detail::concat(", ", static_cast<int>(gbps), " GB/s = ",
                                        static_cast<int>(100.0 * gbps * 1e9 / p), "% of P").c_str()
                       : "");
  const char* path = std::getenv("DAY18_LAB_RESULTS");
  if (!path || !*path) return;
  std::ofstream f(path, std::ios::app);
  if (!f) {
    std::fprintf(stderr, "lab: cannot append to DAY18_LAB_RESULTS=%s\n", path);
    return;
  }
  f << j.dump() << "\n";
}

Stats time_and_record(const std::string& key, double bytes,
                      const std::function<void(cudaStream_t)>& fn, cudaStream_t stream,
                      int repeats) {
  TimingOptions o;
  o.warmup = 3;
  o.repeats = repeats;
  o.stream = stream;
  Stats s = time_gpu(fn, o);
  record_timing({key, s.median, s.p20, s.p80, bytes});
  return s;
}

}  // namespace day18::lab

// What the lab 06 tests share: the fixtures (hand-made ncu CSVs in tests/engine/profiling/data and
// reference/ncu/fixtures, the labels of reference/ncu/labels.json), a reference metric reader that
// does not go through task 1 (so tasks 2-4 can be checked in any order), and the label of a
// Decision as `day18 classify` prints it.
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/profiling/classifier.h"
#include "engine/profiling/kernel_analysis.h"
#include "engine/profiling/ncu_csv.h"
#include "tests/labs/support/lab.h"

namespace day18::lab06 {

inline std::string source(const std::string& rel) {
  return std::string(DAY18_SOURCE_DIR) + "/" + rel;
}
inline std::string data(const std::string& name) {
  return source("tests/engine/profiling/data/" + name);
}

// The metric `name` of row `row` without task 1's read_metric: the same rules, written here.
inline std::optional<double> reference_metric(const ncu::Table& t, size_t row,
                                              std::string_view name) {
  const int c = t.column(name);
  if (c < 0) return std::nullopt;
  const std::string& cell = t.rows.at(row).at(c);
  if (cell.empty() || cell == "n/a") return std::nullopt;
  const std::optional<double> v = ncu::parse_number(cell);
  if (!v) throw InvalidArgument(t.where(row) + ": \"" + cell + "\" is not a number");
  return *v * ncu::unit_scale(t.units.at(c));
}

// "MEMORY BOUND (DRAM)", "LATENCY BOUND (occupancy limited by shared memory)", "UNCOALESCED".
inline std::string label(const Decision& d) {
  std::string detail = cause_name(d.cause);
  if (d.cause == Cause::occupancy && d.limiter != Limiter::none)
    detail = std::string("occupancy limited by ") + limiter_name(d.limiter);
  return detail.empty() ? bound_name(d.bound)
                        : std::string(bound_name(d.bound)) + " (" + detail + ")";
}
inline std::string label(const std::string& verdict, const std::string& detail) {
  return detail.empty() ? verdict : verdict + " (" + detail + ")";
}

inline nlohmann::json labels() {
  std::ifstream f(source("reference/ncu/labels.json"));
  return nlohmann::json::parse(f);
}

}  // namespace day18::lab06

// Reading what Nsight Compute writes with `ncu --csv --page raw` (scripts/profile_ncu.sh): one
// row per profiled kernel launch, one column per metric, found BY NAME, never by position (a
// different --metrics list, ncu version or section set reorders and adds columns).
//
//   ncu::Table t = ncu::read_csv("reference/ncu/h200/calibration.csv");
//   for (size_t r = 0; r < t.rows.size(); ++r) {
//     std::optional<double> dram = ncu::read_metric(t, r, "dram__bytes_read.sum");   // bytes
//     double ms = ncu::metric(t, r, "gpu__time_duration.sum") * 1e3;  // throws naming the metric
//   }
//
// What the file looks like, and what the reader does with each part:
//   ==PROF== Connected to process 4242 (day18)     preamble: ncu's ==PROF==/==WARNING==/==ERROR==
//   ...the program's own output, if mixed in...    lines and anything else before the header are
//                                                  skipped (==ERROR== lines are kept in `notes`)
//   "ID","Process ID",...,"Kernel Name",...,"dram__bytes_read.sum",...    the header
//   "","",...,"","byte",...                        the units row (optional): each metric's unit;
//                                                  values are converted to base units (Kbyte ->
//                                                  byte, usecond -> second, Gbyte/second ->
//                                                  byte/second)
//   "0","4242",...,"calib_stream_copy(...)",...,"1,073,741,824",...    one row per launch:
//                                                  quoted fields, thousands separators, "n/a"
// The "details" page (one row per metric: "Metric Name","Metric Unit","Metric Value") is read too:
// it is pivoted into the same one-row-per-launch table.
//
// A malformed file is an InvalidArgument naming the file, the line and the column: no header, a
// row with the wrong number of fields, an unterminated quote, a value that is not a number.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace day18::ncu {

struct Table {
  std::string source;                // the file name (or what the text came from), for messages
  std::vector<std::string> columns;  // the header, in file order
  std::vector<std::string> units;    // one per column ("" where none); all "" without a units row
  bool has_units_row = false;
  std::vector<std::vector<std::string>>
      rows;                        // one per launch, one cell per column (text as written)
  std::vector<int> row_lines;      // the line each row starts on (1-based)
  std::vector<std::string> notes;  // ==ERROR== / ==WARNING== lines of the preamble, as written
  bool pivoted = false;            // read from the "details" page (Metric Name/Value rows)

  // Index of the column named exactly `name`, or -1.
  int column(std::string_view name) const;
  bool has_column(std::string_view name) const { return column(name) >= 0; }
  // A cell as written ("" when the column is absent).
  const std::string& text(size_t row, std::string_view name) const;
  // "FILE:LINE" of a row, for messages.
  std::string where(size_t row) const;
};

// Parses the text of an ncu CSV export. `source` names it in messages (a path, "<stdin>").
Table parse_csv(std::string_view text, const std::string& source);
// Reads and parses a file; a missing or unreadable file is an InvalidArgument naming it.
Table read_csv(const std::string& path);

// How many base units one `unit` is, and the base unit it converts to: ("Kbyte") -> 1e3, "byte";
// ("usecond") -> 1e-6, "second"; ("Gbyte/second") -> 1e9, "byte/second"; ("cycle/nsecond") ->
// 1e9, "cycle/second"; ("%") -> 1, "%". A unit it does not know is left as it is (factor 1).
double unit_scale(std::string_view unit, std::string* base_unit = nullptr);

// Parses one number as ncu writes it: "42", "-1.5", "3.2e-05", "1,073,741,824" (thousands
// separators, groups of three), "1,234.5". Returns nullopt for text that is not such a number.
std::optional<double> parse_number(std::string_view text);

// The value of metric `name` in row `row`, in base units (the units row applied): nullopt when
// the file has no such column or the cell is empty or "n/a" (ncu writes that for a metric it
// could not collect); a cell that is not a number is an InvalidArgument naming the file, line,
// column and the text as written.  (Lab 06, task 1.)
std::optional<double> read_metric(const Table& t, size_t row, std::string_view name);

// read_metric, or an InvalidArgument naming the missing metric, the kernel and the file, and how
// to collect it (scripts/profile_ncu.sh's metric list).
double metric(const Table& t, size_t row, std::string_view name);

// The first of `names` that row `row` has a value for (metrics renamed between ncu versions,
// e.g. dram__throughput vs gpu__dram_throughput), or nullopt.
std::optional<double> first_metric(const Table& t, size_t row,
                                   std::initializer_list<std::string_view> names);

// "Kernel Name" of a row (demangled as ncu prints it) and its short form: no return type,
// namespaces, template arguments or parameters: "void day18::cuda::(anonymous
// namespace)::rms_norm_kernel<__half, 8, 1>(__half *, ...)" -> "rms_norm_kernel".
std::string kernel_name(const Table& t, size_t row);
std::string short_kernel_name(std::string_view demangled);

}  // namespace day18::ncu

// Lab 06, task 1: ncu::read_metric, a metric of one launch by the NAME of its column.
//
// The files are what Nsight Compute writes (tests/engine/profiling/data, reference/ncu/fixtures):
// columns in any order, a units row (usecond, Kbyte, Kbyte/block), thousands separators
// ("1,073,741,824"), "n/a" for a metric ncu could not collect, and a broken value that must be an
// error naming the file, line, column and text.
#include "tests/labs/06/lab06.h"

namespace day18 {
namespace {

using lab06::data;

TEST(Lab06_Task1_CsvByName, FindsColumnsByNameNotByPosition) {
  // dram__bytes_read.sum is the FIRST column here, the duration the fourth.
  const ncu::Table t = ncu::read_csv(data("shuffled_no_units.csv"));
  EXPECT_EQ(ncu::read_metric(t, 0, "dram__bytes_read.sum"), 1073741824.0);
  EXPECT_EQ(ncu::read_metric(t, 0, "gpu__time_duration.sum"), 268437.0);
  EXPECT_EQ(ncu::read_metric(t, 1, "dram__bytes_read.sum"), 512.0);
}

TEST(Lab06_Task1_CsvByName, ThousandsSeparatorsAreNotTheEndOfTheNumber) {
  // std::stod("1,073,741,824") is 1: parse_number reads the separators.
  const ncu::Table t = ncu::read_csv(data("shuffled_no_units.csv"));
  EXPECT_EQ(ncu::read_metric(t, 1, "gpu__time_duration.sum"), 1024.5);  // "1,024.5"
  const ncu::Table h =
      ncu::read_csv(lab06::source("reference/ncu/fixtures/calibration_handmade.csv"));
  EXPECT_EQ(ncu::read_metric(h, 0, "dram__bytes_read.sum"), 536904704.0);  // "536,904,704"
}

TEST(Lab06_Task1_CsvByName, TheUnitsRowConvertsToBaseUnits) {
  // "2.5" usecond, "1,500" Kbyte, "48" Kbyte/block, "12.5" %.
  const ncu::Table t = ncu::read_csv(data("auto_units_crlf.csv"));
  EXPECT_NEAR(ncu::read_metric(t, 0, "gpu__time_duration.sum").value_or(-1), 2.5e-6, 1e-18);
  EXPECT_NEAR(ncu::read_metric(t, 0, "dram__bytes_read.sum").value_or(-1), 1.5e6, 1e-6);
  EXPECT_NEAR(ncu::read_metric(t, 0, "launch__shared_mem_per_block").value_or(-1), 48e3, 1e-9);
  EXPECT_EQ(ncu::read_metric(t, 0, "sm__throughput.avg.pct_of_peak_sustained_elapsed"), 12.5);
}

TEST(Lab06_Task1_CsvByName, NaAndEmptyAndAbsentAreNoValue) {
  const ncu::Table t = ncu::read_csv(data("preamble_and_na.csv"));
  const char* eff = "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct";
  EXPECT_FALSE(ncu::read_metric(t, 0, eff).has_value()) << "\"n/a\" is no value, not 0";
  EXPECT_FALSE(ncu::read_metric(t, 1, eff).has_value()) << "\"\" is no value";
  EXPECT_EQ(ncu::read_metric(t, 2, eff), 55.5);
  EXPECT_FALSE(ncu::read_metric(t, 0, "dram__bytes_read.sum").has_value()) << "no such column";
}

TEST(Lab06_Task1_CsvByName, AValueThatIsNotANumberIsAnErrorNamingFileLineAndColumn) {
  const ncu::Table t = ncu::read_csv(data("malformed_not_a_number.csv"));
  EXPECT_EQ(ncu::read_metric(t, 0, "sm__throughput.avg.pct_of_peak_sustained_elapsed"), 12.5);
  try {
    ncu::read_metric(t, 1, "sm__throughput.avg.pct_of_peak_sustained_elapsed");
    ADD_FAILURE() << "\"twelve\" read without an error";
  } catch (const LabNotImplemented&) {
    throw;
  } catch (const InvalidArgument& e) {
    const std::string msg = e.what();
    for (const char* part : {"malformed_not_a_number.csv:4",
                             "sm__throughput.avg.pct_of_peak_sustained_elapsed", "twelve"})
      EXPECT_NE(msg.find(part), std::string::npos) << "the message lacks '" << part << "': " << msg;
  }
}

TEST(Lab06_Task1_CsvByName, EveryMetricOfTheCalibrationFixtureReadsAsTheReferenceDoes) {
  const ncu::Table t =
      ncu::read_csv(lab06::source("reference/ncu/fixtures/calibration_handmade.csv"));
  int mismatches = 0;
  for (size_t r = 0; r < t.rows.size(); ++r)
    for (const std::string& m : ncu_metrics_read()) {
      const auto want = lab06::reference_metric(t, r, m);
      const auto got = ncu::read_metric(t, r, m);
      if (want != got && mismatches++ < 5)
        ADD_FAILURE() << t.where(r) << " " << m << ": expected "
                      << (want ? std::to_string(*want) : "no value") << ", got "
                      << (got ? std::to_string(*got) : "no value") << " (cell \"" << t.text(r, m)
                      << "\", unit \"" << (t.column(m) >= 0 ? t.units[t.column(m)] : "") << "\")";
    }
  if (mismatches > 5) ADD_FAILURE() << "... and " << mismatches - 5 << " more";
}

}  // namespace
}  // namespace day18

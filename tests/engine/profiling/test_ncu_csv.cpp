// The Nsight Compute CSV reader on hand-made files (tests/engine/profiling/data/, and the
// hand-made fixtures of reference/ncu/fixtures/): columns found by name whatever their order, the
// units row applied, thousands separators, "n/a", the ==PROF== preamble and the program's own
// output skipped, the details page pivoted, and every malformed file an error naming the file,
// the line and what is wrong.
#include <gtest/gtest.h>

#include <string>

#include "engine/core/error.h"
#include "engine/profiling/ncu_csv.h"
#include "tests/support/throws.h"

namespace day18 {
namespace {

std::string data(const std::string& name) {
  return std::string(DAY18_SOURCE_DIR) + "/tests/engine/profiling/data/" + name;
}

TEST(NcuCsv, ParseNumberReadsThousandsSeparatorsAndRejectsWhatIsNotANumber) {
  EXPECT_EQ(ncu::parse_number("42"), 42.0);
  EXPECT_EQ(ncu::parse_number("-1.5"), -1.5);
  EXPECT_EQ(ncu::parse_number("3.2e-05"), 3.2e-05);
  EXPECT_EQ(ncu::parse_number("1,073,741,824"), 1073741824.0);
  EXPECT_EQ(ncu::parse_number("1,234.5"), 1234.5);
  EXPECT_EQ(ncu::parse_number(" 7 "), 7.0);
  for (const char* bad :
       {"", "n/a", "twelve", "1,23,456", "1,2345", ",123", "27.595.520", "12%", "1e999", "0x10"})
    EXPECT_FALSE(ncu::parse_number(bad).has_value()) << bad;
}

TEST(NcuCsv, UnitScaleConvertsToBaseUnits) {
  std::string base;
  EXPECT_EQ(ncu::unit_scale("Kbyte", &base), 1e3);
  EXPECT_EQ(base, "byte");
  EXPECT_EQ(ncu::unit_scale("Gbyte/second", &base), 1e9);
  EXPECT_EQ(base, "byte/second");
  EXPECT_DOUBLE_EQ(ncu::unit_scale("usecond", &base), 1e-6);
  EXPECT_EQ(base, "second");
  EXPECT_DOUBLE_EQ(ncu::unit_scale("nsecond"), 1e-9);
  EXPECT_DOUBLE_EQ(ncu::unit_scale("cycle/nsecond", &base), 1e9);
  EXPECT_EQ(base, "cycle/second");
  EXPECT_EQ(ncu::unit_scale("Kbyte/block"), 1e3);
  EXPECT_EQ(ncu::unit_scale("%"), 1);
  EXPECT_EQ(ncu::unit_scale(""), 1);
  EXPECT_EQ(ncu::unit_scale("register/thread"), 1);
  EXPECT_EQ(ncu::unit_scale("Mystery", &base), 1);  // unknown: left as it is
  EXPECT_EQ(base, "Mystery");
}

TEST(NcuCsv, ColumnsAreFoundByNameWhateverTheirOrder) {
  const ncu::Table t = ncu::read_csv(data("shuffled_no_units.csv"));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_FALSE(t.has_units_row);
  EXPECT_EQ(ncu::metric(t, 0, "dram__bytes_read.sum"), 1073741824.0);
  EXPECT_EQ(ncu::metric(t, 0, "gpu__time_duration.sum"), 268437.0);  // no units row: as written
  EXPECT_EQ(ncu::metric(t, 1, "gpu__time_duration.sum"), 1024.5);
  EXPECT_EQ(ncu::kernel_name(t, 1), "tiny_kernel");
  EXPECT_EQ(ncu::short_kernel_name(ncu::kernel_name(t, 0)), "copy_kernel");
  EXPECT_EQ(t.text(0, "Grid Size"), "(4224, 1, 1)");  // a quoted field with commas
}

TEST(NcuCsv, TheUnitsRowIsAppliedAndCrlfLinesRead) {
  const ncu::Table t = ncu::read_csv(data("auto_units_crlf.csv"));
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_TRUE(t.has_units_row);
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "gpu__time_duration.sum"), 2.5e-6);      // usecond
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "dram__bytes_read.sum"), 1.5e6);         // Kbyte, "1,500"
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "launch__shared_mem_per_block"), 48e3);  // Kbyte/block
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "sm__throughput.avg.pct_of_peak_sustained_elapsed"), 12.5);
}

TEST(NcuCsv, ThePreambleIsSkippedAndNaIsNoValue) {
  const ncu::Table t = ncu::read_csv(data("preamble_and_na.csv"));
  ASSERT_EQ(t.rows.size(), 3u);  // three launches, two of the same kernel
  EXPECT_EQ(t.row_lines[0], 7);
  ASSERT_EQ(t.notes.size(), 1u);  // the ==WARNING== line is kept
  EXPECT_NE(t.notes[0].find("==WARNING=="), std::string::npos);
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "gpu__time_duration.sum"), 3104e-9);
  const char* eff = "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct";
  EXPECT_FALSE(ncu::read_metric(t, 0, eff).has_value());  // "n/a"
  EXPECT_FALSE(ncu::read_metric(t, 1, eff).has_value());  // ""
  EXPECT_EQ(ncu::read_metric(t, 2, eff), 55.5);
  EXPECT_FALSE(ncu::read_metric(t, 0, "no_such.metric").has_value());
}

TEST(NcuCsv, AMissingMetricIsAnErrorNamingItTheKernelAndTheFile) {
  const ncu::Table t = ncu::read_csv(data("preamble_and_na.csv"));
  EXPECT_THROW_WITH(ncu::metric(t, 0, "dram__bytes_read.sum"), InvalidArgument,
                    "no column dram__bytes_read.sum", "k1", "preamble_and_na.csv",
                    "scripts/profile_ncu.sh");
  EXPECT_THROW_WITH(
      ncu::metric(t, 0, "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct"),
      InvalidArgument, "has no value", "n/a", "preamble_and_na.csv:7");
}

TEST(NcuCsv, TheDetailsPageIsPivotedIntoOneRowPerLaunch) {
  const ncu::Table t = ncu::read_csv(data("details_page.csv"));
  EXPECT_TRUE(t.pivoted);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(ncu::kernel_name(t, 0), "calib_fma_loop");
  EXPECT_EQ(ncu::metric(t, 0, "sm__throughput.avg.pct_of_peak_sustained_elapsed"), 96.52);
  EXPECT_DOUBLE_EQ(ncu::metric(t, 1, "gpu__time_duration.sum"), 268.44e-6);
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "gpu__time_duration.sum"), 2198.72e-6);
}

TEST(NcuCsv, TheHandMadeCalibrationFixtureReads) {
  const ncu::Table t = ncu::read_csv(std::string(DAY18_SOURCE_DIR) +
                                     "/reference/ncu/fixtures/calibration_handmade.csv");
  ASSERT_EQ(t.rows.size(), 6u);
  EXPECT_EQ(ncu::short_kernel_name(ncu::kernel_name(t, 0)), "calib_stream_copy");
  EXPECT_DOUBLE_EQ(ncu::metric(t, 0, "gpu__time_duration.sum"), 268437e-9);
  EXPECT_EQ(ncu::metric(t, 0, "dram__bytes_read.sum"), 536904704.0);
}

TEST(NcuCsv, ShortKernelNamesDropReturnTypeNamespacesTemplatesAndParameters) {
  EXPECT_EQ(
      ncu::short_kernel_name("void day18::cuda::(anonymous namespace)::rms_norm_kernel<__half, "
                             "8, 1>(__half *, const __half *, float, int)"),
      "rms_norm_kernel");
  EXPECT_EQ(ncu::short_kernel_name("calib_fma_loop(float *, int, float)"), "calib_fma_loop");
  EXPECT_EQ(ncu::short_kernel_name("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64"),
            "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64");
  EXPECT_EQ(ncu::short_kernel_name("void k<(anonymous namespace)::X>(int)"), "k");
}

// ---- malformed files: each error names the file and the line (and the column where there is one)
struct Bad {
  const char* file;
  std::vector<const char*> parts;
};

TEST(NcuCsv, MalformedFilesAreClearErrors) {
  const Bad cases[] = {
      {"malformed_empty.csv", {"malformed_empty.csv", "empty"}},
      {"malformed_no_header.csv",
       {"malformed_no_header.csv", "no Nsight Compute CSV header",
        "ncu said: ==ERROR== The "
        "application returned"}},
      {"malformed_field_count.csv", {"malformed_field_count.csv:4", "2 fields", "has 3"}},
      {"malformed_unterminated_quote.csv", {"malformed_unterminated_quote.csv:3", "never closed"}},
      {"malformed_text_after_quote.csv",
       {"malformed_text_after_quote.csv:2", "after the closing quote of field 2"}},
      {"malformed_duplicate_column.csv",
       {"malformed_duplicate_column.csv:1", "gpu__time_duration.sum", "appears twice"}},
      {"malformed_header_only.csv", {"malformed_header_only.csv", "no kernel rows"}},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.file);
    try {
      ncu::read_csv(data(c.file));
      ADD_FAILURE() << "no error";
    } catch (const InvalidArgument& e) {
      for (const char* p : c.parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
            << "lacks '" << p << "': " << e.what();
    }
  }
}

TEST(NcuCsv, AValueThatIsNotANumberNamesTheFileLineColumnAndText) {
  for (auto [file, line, col, text] :
       {std::tuple{"malformed_not_a_number.csv", ":4",
                   "sm__throughput.avg.pct_of_peak_sustained_elapsed", "\"twelve\""},
        std::tuple{"malformed_european_thousands.csv", ":3", "dram__bytes_read.sum",
                   "\"27.595.520\""},
        std::tuple{"malformed_bad_thousands.csv", ":3", "dram__bytes_read.sum", "\"1,23,456\""}}) {
    SCOPED_TRACE(file);
    const ncu::Table t = ncu::read_csv(data(file));
    const size_t row = t.rows.size() - 1;
    EXPECT_THROW_WITH(ncu::read_metric(t, row, col), InvalidArgument,
                      (std::string(file) + line).c_str(), col, text, "is not a number");
  }
}

TEST(NcuCsv, AMissingFileNamesTheFlagAndThePath) {
  EXPECT_THROW_WITH(ncu::read_csv("/no/such/file.csv"), InvalidArgument, "--ncu",
                    "/no/such/file.csv", "cannot open");
}

}  // namespace
}  // namespace day18

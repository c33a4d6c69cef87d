// The tuning experiments' results (`day18 tune block-size|batch-size|precision --json FILE`), in
// memory and as the JSON contract "day18.tune.v1" that `day18 report` and
// scripts/plot_experiments.py read (docs/tuning.md has the whole schema):
//
//   Experiment                 one run of one experiment: provenance, roof, hypothesis, notes
//     Group                    one question with one baseline ("paged_attention v1, B=64 ctx 4096")
//       Point                  one configuration: checked against the oracle, THEN timed
//
// A point that failed its check is kept ("correct": false, its error) but carries no timing: it
// was never timed. Times are microseconds; bytes and FLOPs per launch (engine/profiling/
// cost_model.h); numbers are plain JSON numbers.
//
//   Experiment e = read_experiment("runs/block_size.json");   // validated, errors name the field
//   std::puts(experiment_tables(e).c_str());                  // what `day18 tune show` prints
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace day18::tuning {

inline constexpr const char* kSchema = "day18.tune.v1";
// The experiments, by the name the JSON uses ("block_size") and the CLI's ("block-size").
inline constexpr const char* kExperiments[] = {"block_size", "batch_size", "precision"};
bool is_experiment(const std::string& name);

// cudaOccupancyMaxActiveBlocksPerMultiprocessor on the kernel really launched, and the waves its
// grid makes: waves = grid blocks / (SMs x blocks per SM).
struct Occupancy {
  double theoretical_pct = 0;  // resident warps / the SM's warp slots x 100
  int blocks_per_sm = 0;
  int registers = 0;        // per thread
  double shared_bytes = 0;  // per block, static + dynamic
  double waves = 0;
  int threads = 0;  // per block (also in "extra"; the occupancy follows from it)
  double grid = 0;  // blocks
};

struct Point {
  nlohmann::json config = nlohmann::json::object();  // the swept parameters' values
  std::string label;                                 // "128 threads"
  bool correct = false;
  double max_abs_err = 0, tolerance = 0;
  std::string check_report;  // the first mismatches, when not correct (JSON: "error")
  // Timing: only when correct (a wrong configuration is not timed).
  bool timed = false;
  double median_us = 0, p20_us = 0, p80_us = 0;
  int repeats = 0;
  double bytes = 0, flops = 0, pct_of_p = 0;
  std::optional<Occupancy> occupancy;
  std::string verdict;  // classify() on the roofline stand-ins, "" when not timed
  nlohmann::json extra = nlohmann::json::object();
};

struct Group {
  std::string name, kernel;
  nlohmann::json shape = nlohmann::json::object();
  int baseline = 0;           // index into points
  int best = -1;              // index into points; -1: no point was correct
  double speedup = 0;         // baseline median / best median (0 when either is not timed)
  bool within_noise = false;  // the best's p20-p80 overlaps the baseline's
  std::vector<Point> points;
};

struct Roof {
  double p_gbps = 0;
  std::string p_source;  // "probe run in this process" or "--roof FILE"
  double peak_tflops = 0, peak_fma_tflops = 0;
};

struct Provenance {
  std::string gpu, driver, cuda_runtime, commit, date, command;
  int sm_count = 0;
};

struct Experiment {
  std::string experiment;  // one of kExperiments
  Provenance provenance;
  Roof roof;
  std::string hypothesis;
  std::vector<std::string> parameters;
  std::vector<Group> groups;
  std::vector<std::string> notes;
};

nlohmann::json to_json(const Point& p);
nlohmann::json to_json(const Group& g);
nlohmann::json to_json(const Experiment& e);

// Parses and validates the contract: the schema string, every required field with its type, a
// timed point's four timing fields, no timing on a point that is not correct, baseline and best
// in range. InvalidArgument names `where` (the file) and the field's path
// ("groups[0].points[2].median_us"), never a crash on a bad file.
Experiment experiment_from_json(const nlohmann::json& j, const std::string& where);
// Reads and validates a file (InvalidArgument naming the path when missing or not JSON).
Experiment read_experiment(const std::string& path);
// Writes to_json(e) atomically (engine/core/file_io.h); `flag` names the option in errors.
void write_experiment(const std::string& path, const Experiment& e, const char* flag = "--json");

// The tables `day18 tune show` prints: per group, one line per point (label, correct, median and
// p20-p80, repeats, % of P, occupancy and waves, verdict), the baseline and best marked, the
// speedup and whether it is noise; then the notes.
std::string experiment_tables(const Experiment& e);

}  // namespace day18::tuning

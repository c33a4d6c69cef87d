// Lab 05, task 1: the step's CPU stages as ranges (timed_stage in engine/runtime/engine.cpp).
// The engine runs on the CPU backend with the range recorder on; the recorded ranges must show
// each step's five stages, in order, on one thread, with the model's ranges nested inside Launch,
// and the StepRecord times must be those stages' durations.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/profiling/range_recorder.h"
#include "engine/profiling/trace_check.h"
#include "engine/runtime/engine.h"
#include "tests/labs/05/lab05.h"

namespace day18 {
namespace {

using trace::EngineRange;

struct Recorded {
  trace::TraceData data;
  std::vector<StepRecord> records;
};

// A short run of the tiny model on the CPU backend (async scheduling, as the engine defaults),
// recorded from its first step to its last.
Recorded record_run(bool async = true) {
  EngineConfig c;
  c.preset = "tiny";
  c.device = Device::cpu;
  c.async_scheduling = async;
  LLMEngine e(c);
  for (int i = 0; i < 3; ++i) {
    SamplingParams p;
    p.max_tokens = 5;
    p.ignore_eos = true;
    e.add_request(std::vector<int32_t>(12, 3 + i), p);
  }
  trace::start_recording();
  try {
    e.run_until_done();
  } catch (...) {
    (void)trace::stop_recording();
    throw;
  }
  const trace::Recording r = trace::stop_recording();
  Recorded out;
  for (const trace::RecordedRange& x : r.ranges)
    out.data.ranges.push_back({x.name, x.thread, x.start_ns, x.end_ns, x.depth, x.step});
  for (const trace::RecordedThread& t : r.threads)
    out.data.threads.push_back({t.tid, t.pthread_id, t.name});
  out.records = e.records();
  return out;
}

const char* const kStages[] = {"Scheduler", "PrepareInputs", "Launch", "Wait", "ProcessOutputs"};

// The top-level ranges of each step, in time order.
std::map<int64_t, std::vector<const EngineRange*>> stages_by_step(const trace::TraceData& d) {
  std::map<int64_t, std::vector<const EngineRange*>> out;
  for (const EngineRange& r : d.ranges)
    if (r.depth == 0 && r.step >= 0) out[r.step].push_back(&r);
  for (auto& [s, v] : out)
    std::stable_sort(v.begin(), v.end(), [](const EngineRange* a, const EngineRange* b) {
      return a->start_ns < b->start_ns;
    });
  return out;
}

TEST(Lab05_Task1_StageRanges, EachStepRunsItsFiveStagesInOrder) {
  for (bool async : {true, false}) {
    const Recorded r = record_run(async);
    const auto steps = stages_by_step(r.data);
    ASSERT_FALSE(steps.empty()) << "no range was recorded: does timed_stage open the stage's range "
                                   "(DAY18_NVTX_RANGE(name)) around fn()?";
    ASSERT_EQ(steps.size(), r.records.size()) << "one set of stages per step the engine ran";
    for (const auto& [step, v] : steps) {
      std::vector<std::string> names;
      for (const EngineRange* x : v) names.push_back(x->name);
      EXPECT_EQ(names, std::vector<std::string>(std::begin(kStages), std::end(kStages)))
          << "step " << step << (async ? " (async)" : " (sync)")
          << ": each step is Scheduler, PrepareInputs, Launch, Wait, ProcessOutputs, once each";
      for (size_t i = 1; i < v.size(); ++i) EXPECT_LE(v[i - 1]->end_ns, v[i]->start_ns) << step;
    }
  }
}

TEST(Lab05_Task1_StageRanges, TheModelsRangesOpenInsideLaunch) {
  const Recorded r = record_run();
  const auto problems = trace::check_nesting(r.data);
  EXPECT_TRUE(problems.empty()) << trace::join_problems(problems);
  std::map<int64_t, const EngineRange*> launch;
  for (const EngineRange& x : r.data.ranges)
    if (x.name == std::string("Launch")) launch[x.step] = &x;
  int models = 0, samplings = 0;
  for (const EngineRange& x : r.data.ranges) {
    const bool model = x.name == std::string("ModelExecutor");
    const bool sampling = x.name == std::string("Sampling");
    if (!model && !sampling) continue;
    models += model;
    samplings += sampling;
    ASSERT_TRUE(launch.count(x.step)) << x.name << " of step " << x.step << " has no Launch";
    const EngineRange& l = *launch[x.step];
    EXPECT_EQ(x.depth, 1) << x.name << ": directly inside Launch";
    EXPECT_LE(l.start_ns, x.start_ns) << x.name
                                      << " starts before its Launch: is fn() run "
                                         "inside the range's scope?";
    EXPECT_LE(x.end_ns, l.end_ns) << x.name << " ends after its Launch";
  }
  EXPECT_EQ(models, static_cast<int>(r.records.size()));
  EXPECT_EQ(samplings, static_cast<int>(r.records.size()));
}

TEST(Lab05_Task1_StageRanges, EveryRangeBelongsToTheStepTheSchedulerNumbered) {
  const Recorded r = record_run();
  std::set<int64_t> want, got;
  for (const StepRecord& s : r.records) want.insert(s.step);
  for (const EngineRange& x : r.data.ranges) {
    if (x.step < 0) {
      // Only a Scheduler that found nothing to run belongs to no step (async mode, at the end).
      EXPECT_EQ(x.name, std::string("Scheduler")) << "a " << x.name << " range of no step";
      continue;
    }
    got.insert(x.step);
  }
  EXPECT_EQ(got, want) << "ranges tagged with steps the engine did not run";
}

TEST(Lab05_Task1_StageRanges, TheStepRecordTimesAreTheStagesDurations) {
  const Recorded r = record_run();
  std::map<std::pair<int64_t, std::string>, int64_t> dur;
  for (const EngineRange& x : r.data.ranges)
    if (x.depth == 0) dur[{x.step, x.name}] = x.duration();
  for (const StepRecord& s : r.records) {
    const std::pair<const char*, double> times[] = {{"Scheduler", s.scheduler_ms},
                                                    {"PrepareInputs", s.prepare_ms},
                                                    {"Launch", s.submit_ms},
                                                    {"Wait", s.wait_ms},
                                                    {"ProcessOutputs", s.process_ms}};
    for (const auto& [name, ms] : times) {
      const int64_t range_ns = dur[{s.step, name}];
      // The stage's clock encloses its range (started before it opens, read after it closes),
      // on the same steady clock; and it is the same stage, give or take a few microseconds.
      EXPECT_GT(ms, 0) << "step " << s.step << " " << name << ": is ms set to the stage's time?";
      EXPECT_GE(ms * 1e6 + 1, static_cast<double>(range_ns)) << "step " << s.step << " " << name;
      EXPECT_LE(ms * 1e6, static_cast<double>(range_ns) + 200e3)
          << "step " << s.step << " " << name;
    }
  }
}

}  // namespace
}  // namespace day18

// The engine's range recorder (engine/profiling/range_recorder.h): what DAY18_NVTX_RANGE records
// while a recording is on, and that it records nothing otherwise.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/profiling/range_recorder.h"

namespace day18::trace {
namespace {

std::string names(const Recording& r) {
  std::string s;
  for (const RecordedRange& x : r.ranges) s += std::string(s.empty() ? "" : " ") + x.name;
  return s;
}

TEST(RangeRecorder, RecordsNothingWhenNoRecordingIsOn) {
  { DAY18_NVTX_RANGE("Before"); }
  start_recording();
  const Recording r = stop_recording();
  EXPECT_TRUE(r.ranges.empty()) << names(r);
  EXPECT_FALSE(recording());
}

TEST(RangeRecorder, NestedRangesGetTheirDepthAndNestInTime) {
  start_recording();
  {
    DAY18_NVTX_RANGE("Launch");
    {
      DAY18_NVTX_RANGE("ModelExecutor");
      { DAY18_NVTX_RANGE("Attention"); }
      { DAY18_NVTX_RANGE("MLP"); }
    }
    { DAY18_NVTX_RANGE("Sampling"); }
  }
  const Recording r = stop_recording();
  ASSERT_EQ(names(r), "Launch ModelExecutor Attention MLP Sampling");
  const int expected_depth[] = {0, 1, 2, 2, 1};
  for (size_t i = 0; i < r.ranges.size(); ++i) EXPECT_EQ(r.ranges[i].depth, expected_depth[i]) << i;
  const RecordedRange &launch = r.ranges[0], &model = r.ranges[1], &attn = r.ranges[2],
                      &mlp = r.ranges[3];
  EXPECT_LE(launch.start_ns, model.start_ns);
  EXPECT_LE(model.end_ns, launch.end_ns);
  EXPECT_LE(attn.end_ns, mlp.start_ns);
  EXPECT_LE(r.start_ns, launch.start_ns);
  EXPECT_LE(launch.end_ns, r.end_ns);
  ASSERT_EQ(r.threads.size(), 1u);
  EXPECT_EQ(r.threads[0].tid, launch.thread);
}

TEST(RangeRecorder, ARangeBelongsToTheStepMarkedBeforeItEnds) {
  start_recording();
  {
    DAY18_NVTX_RANGE("Scheduler");
    mark_step(7);  // the scheduler numbers the step inside its range
  }
  { DAY18_NVTX_RANGE("PrepareInputs"); }
  mark_step(6);
  { DAY18_NVTX_RANGE("Wait"); }
  const Recording r = stop_recording();
  ASSERT_EQ(r.ranges.size(), 3u);
  EXPECT_EQ(r.ranges[0].step, 7);
  EXPECT_EQ(r.ranges[1].step, 7);
  EXPECT_EQ(r.ranges[2].step, 6);
}

TEST(RangeRecorder, EachThreadHasItsOwnLogAndName) {
  start_recording();
  set_thread_name("engine");
  { DAY18_NVTX_RANGE("Scheduler"); }
  std::thread other([] {
    set_thread_name("helper");
    DAY18_NVTX_RANGE("Helper");
  });
  other.join();
  const Recording r = stop_recording();
  ASSERT_EQ(r.threads.size(), 2u);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_NE(r.ranges[0].thread, r.ranges[1].thread);
  for (const RecordedRange& x : r.ranges) {
    const bool helper = std::string(x.name) == "Helper";
    for (const RecordedThread& t : r.threads)
      if (t.tid == x.thread) EXPECT_EQ(t.name, helper ? "helper" : "engine");
    EXPECT_EQ(x.depth, 0);
  }
}

TEST(RangeRecorder, ARangeOpenAcrossTheStopIsLeftOutAndCounted) {
  start_recording();
  Recording r;
  {
    DAY18_NVTX_RANGE("Open");
    { DAY18_NVTX_RANGE("Closed"); }
    r = stop_recording();
  }
  EXPECT_EQ(names(r), "Closed");
  EXPECT_EQ(r.unclosed, 1);
  EXPECT_EQ(r.ranges[0].depth, 1);
}

TEST(RangeRecorder, ARangeOpenedBeforeANewRecordingDoesNotLeakIntoIt) {
  start_recording();
  {
    DAY18_NVTX_RANGE("Old");
    (void)stop_recording();
    start_recording();
    { DAY18_NVTX_RANGE("New"); }
  }  // "Old" ends here, in the new recording: ignored
  { DAY18_NVTX_RANGE("Next"); }
  const Recording r = stop_recording();
  EXPECT_EQ(names(r), "New Next");
  for (const RecordedRange& x : r.ranges) EXPECT_EQ(x.depth, 0) << x.name;
}

TEST(RangeRecorder, StartingTwiceIsAnError) {
  start_recording();
  EXPECT_THROW(start_recording(), Error);
  (void)stop_recording();
}

TEST(RangeRecorder, StreamNamesLastAsLongAsTheirOwner) {
  auto* a = reinterpret_cast<cudaStream_t>(0x1000);
  auto* b = reinterpret_cast<cudaStream_t>(0x2000);
  {
    StreamNames names({{a, "h2d"}, {b, "compute"}});
    const auto v = named_streams();
    int found = 0;
    for (const auto& [s, n] : v) found += (s == a && n == "h2d") + (s == b && n == "compute");
    EXPECT_EQ(found, 2);
  }
  for (const auto& [s, n] : named_streams()) EXPECT_TRUE(s != a && s != b) << n;
}

}  // namespace
}  // namespace day18::trace

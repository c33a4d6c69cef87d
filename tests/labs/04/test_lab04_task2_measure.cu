// Lab 04, task 2 (GPU): time_gpu, the one timer of the course (engine/profiling/timing.h). Work of
// a known length (a kernel that spins on the GPU's clock) tells a right timer from the seed's:
// a host clock around an asynchronous launch measures the launch, not the work; a first run
// includes module loading and first touches; a flush inside the events is timed with the work.
#include "tests/labs/04/lab04.h"

namespace day18 {
namespace {

TEST(Lab04_Task2_Measure, RunsTheWarmUpsThenTheRepeatsOnTheGivenStream) {
  DAY18_REQUIRE_GPU();
  Stream s;
  Buffer buf(size_t(16) << 20, Storage::device);
  int calls = 0;
  TimingOptions o;
  o.warmup = 3;
  o.repeats = 7;
  o.flush_l2 = false;
  o.stream = s;
  const Stats ms = time_gpu(
      [&](cudaStream_t st) {
        ++calls;
        EXPECT_EQ(st, s.get()) << "fn must be given options.stream (the events' stream)";
        DAY18_CUDA_CHECK(cudaMemsetAsync(buf.data(), 1, buf.size(), st));
      },
      o);
  EXPECT_EQ(calls, 3 + 7) << "warmup + repeats calls of fn";
  ASSERT_EQ(ms.samples.size(), 7u) << "one sample per timed repeat, none for the warm-ups";
  for (double v : ms.samples) EXPECT_GT(v, 0.0);
  EXPECT_LE(ms.p20, ms.median);
  EXPECT_LE(ms.median, ms.p80);
}

TEST(Lab04_Task2_Measure, TimesTheWorkNotTheLaunch) {
  DAY18_REQUIRE_GPU();
  // A 2 ms kernel: launching it takes microseconds, running it 2 ms. Events on its stream around
  // it time the run; a host clock without a wait would say ~0.01 ms.
  Stream s;
  TimingOptions o;
  o.repeats = 5;
  o.flush_l2 = false;
  o.stream = s;
  const Stats ms = time_gpu([](cudaStream_t st) { lab04::spin(st, 2.0); }, o);
  EXPECT_GT(ms.median, 1.9) << "median " << ms.median << " ms for a 2 ms kernel";
  EXPECT_LT(ms.median, 3.0) << "median " << ms.median << " ms for a 2 ms kernel";
}

TEST(Lab04_Task2_Measure, WarmUpRunsAreNotTimed) {
  DAY18_REQUIRE_GPU();
  // The first two calls are slow (20 ms: a cold first run), the others 1 ms. With two warm-ups
  // no timed repeat may contain a slow one.
  Stream s;
  int calls = 0;
  TimingOptions o;
  o.warmup = 2;
  o.repeats = 5;
  o.flush_l2 = false;
  o.stream = s;
  const Stats ms = time_gpu([&](cudaStream_t st) { lab04::spin(st, calls++ < 2 ? 20.0 : 1.0); }, o);
  EXPECT_LT(ms.max, 10.0) << "a 20 ms warm-up run was timed: the slowest repeat took " << ms.max
                          << " ms";
}

TEST(Lab04_Task2_Measure, TheL2FlushIsOutsideTheEvents) {
  DAY18_REQUIRE_GPU();
  // flush_l2 writes twice the L2 (~120 MB on an H100/H200: tens of microseconds) BEFORE the start
  // event. Timing nothing at all with the flush on must stay far below the flush's own time.
  Stream s;
  TimingOptions o;
  o.repeats = 9;
  o.stream = s;
  o.flush_l2 = false;
  const double flush = time_gpu([](cudaStream_t st) { flush_l2(st); }, o).median;
  o.flush_l2 = true;
  const double empty = time_gpu([](cudaStream_t) {}, o).median;
  EXPECT_LT(empty, 0.5 * flush) << "an empty repeat took " << empty << " ms with the flush on; the "
                                << "flush alone takes " << flush << " ms: it is being timed";
}

}  // namespace
}  // namespace day18

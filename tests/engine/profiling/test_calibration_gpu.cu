// The calibration kernels compute what they say (so the compiler keeps the work, and a profile of
// them is a profile of the work labels.json describes), and the shared-memory kernel really is
// held to one block per SM. GPU only: skipped without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "engine/core/memory.h"
#include "engine/profiling/calibration_kernels.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

namespace cal = calibration;

std::vector<float> host_ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
  return v;
}

// Poisoned when made (0xFF bytes: NaN), like every output of a test: a float the kernel does
// not write reads back as NaN, and no copy back reads uninitialized memory.
struct DeviceFloats {
  Buffer buf;
  explicit DeviceFloats(size_t n) : buf(n * sizeof(float), Storage::device) {
    DAY18_CUDA_CHECK(cudaMemset(buf.data(), 0xFF, buf.size()));
  }
  float* ptr() const { return static_cast<float*>(buf.data()); }
};

std::vector<float> to_host(const DeviceFloats& d, size_t n) {
  std::vector<float> v(n);
  DAY18_CUDA_CHECK(cudaMemcpy(v.data(), d.ptr(), n * sizeof(float), cudaMemcpyDeviceToHost));
  return v;
}

TEST(CalibrationGpu, StreamCopyCopies) {
  DAY18_REQUIRE_GPU();
  const size_t n4 = 100003;  // float4 elements, not a multiple of the grid
  const std::vector<float> in = host_ramp(n4 * 4);
  DeviceFloats din(n4 * 4), dout(n4 * 4);
  DAY18_CUDA_CHECK(cudaMemcpy(din.ptr(), in.data(), in.size() * 4, cudaMemcpyHostToDevice));
  cal::stream_copy(reinterpret_cast<const float4*>(din.ptr()),
                   reinterpret_cast<float4*>(dout.ptr()), n4, nullptr);
  EXPECT_EQ(to_host(dout, in.size()), in);
}

TEST(CalibrationGpu, FmaLoopMatchesTheSameChainsOnTheHost) {
  DAY18_REQUIRE_GPU();
  const int blocks = 3, iters = 100;
  DeviceFloats out(blocks * 256);
  cal::fma_loop(out.ptr(), blocks, iters, 1.0f, nullptr);
  const std::vector<float> got = to_host(out, blocks * 256);
  for (int t : {0, 1, 255, 256, 767}) {
    float a[8], s = 0;
    for (int j = 0; j < 8; ++j) a[j] = 1.0f + 1e-3f * static_cast<float>(t % 256 + j);
    for (int i = 0; i < iters; ++i)
      for (int j = 0; j < 8; ++j) a[j] = std::fmaf(a[j], 0.9999f, 1e-4f);
    for (int j = 0; j < 8; ++j) s += a[j];
    EXPECT_FLOAT_EQ(got[t], s) << "thread " << t;
  }
  EXPECT_EQ(cal::fma_loop_flops(blocks, iters), 3.0 * 256 * 100 * 16);
}

TEST(CalibrationGpu, OneBlockSumsEverything) {
  DAY18_REQUIRE_GPU();
  const size_t n = 1 << 18;
  const std::vector<float> in = host_ramp(n);
  DeviceFloats din(n), dout(1);
  DAY18_CUDA_CHECK(cudaMemcpy(din.ptr(), in.data(), n * 4, cudaMemcpyHostToDevice));
  cal::one_block_sum(din.ptr(), dout.ptr(), n, nullptr);
  const double want = std::accumulate(in.begin(), in.end(), 0.0);
  EXPECT_NEAR(to_host(dout, 1)[0], want, 1e-3 * std::max(1.0, std::fabs(want)) + 0.5);
}

TEST(CalibrationGpu, RandomGatherReadsTheHashedIndex) {
  DAY18_REQUIRE_GPU();
  const size_t table_n = 1 << 16, n_out = 50000;
  const std::vector<float> table = host_ramp(table_n);
  DeviceFloats dt(table_n), dout(n_out);
  DAY18_CUDA_CHECK(cudaMemcpy(dt.ptr(), table.data(), table_n * 4, cudaMemcpyHostToDevice));
  cal::random_gather(dt.ptr(), table_n, dout.ptr(), n_out, 7, nullptr);
  const std::vector<float> got = to_host(dout, n_out);
  size_t distinct_neighbours = 0;
  for (size_t i = 0; i < n_out; ++i) {
    const uint64_t idx = cal::gather_index(i, table_n, 7);
    ASSERT_LT(idx, table_n);
    ASSERT_EQ(got[i], table[idx]) << "output " << i;
    if (i > 0 && idx / 8 != cal::gather_index(i - 1, table_n, 7) / 8) ++distinct_neighbours;
  }
  // Neighbouring outputs read from different 32-byte sectors (that is the point of it).
  EXPECT_GT(distinct_neighbours, n_out * 9 / 10);
  EXPECT_THROW(cal::random_gather(dt.ptr(), 1000, dout.ptr(), 1, 7, nullptr), InvalidArgument);
}

TEST(CalibrationGpu, SmemLimitedSumsAndFitsOneBlockPerSm) {
  DAY18_REQUIRE_GPU();
  const size_t n = 1 << 20;
  const int blocks = 20;
  const std::vector<float> in = host_ramp(n);
  DeviceFloats din(n), dout(blocks);
  DAY18_CUDA_CHECK(cudaMemcpy(din.ptr(), in.data(), n * 4, cudaMemcpyHostToDevice));
  const size_t smem = cal::one_block_per_sm_smem_bytes();
  cal::smem_limited_sum(din.ptr(), dout.ptr(), n, blocks, smem, nullptr);
  const std::vector<float> part = to_host(dout, blocks);
  const double got = std::accumulate(part.begin(), part.end(), 0.0);
  const double want = std::accumulate(in.begin(), in.end(), 0.0);
  EXPECT_NEAR(got, want, 1e-3 * std::max(1.0, std::fabs(want)) + 1.0);
  // One block per SM: the occupancy calculator agrees with the label.
  int dev = 0, sm_smem = 0;
  DAY18_CUDA_CHECK(cudaGetDevice(&dev));
  DAY18_CUDA_CHECK(
      cudaDeviceGetAttribute(&sm_smem, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  EXPECT_GT(smem, static_cast<size_t>(sm_smem) / 2);
  EXPECT_EQ(cal::smem_limited_blocks_per_sm(smem), 1);
  EXPECT_GE(cal::smem_limited_blocks_per_sm(4096), 8) << "without the big allocation many fit";
}

}  // namespace
}  // namespace day18

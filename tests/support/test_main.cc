// gtest main shared by every test. A test binary whose every test was skipped (for example a GPU
// test on a machine without a device) exits 77 so ctest reports it as skipped, not passed.
//
// Under ThreadSanitizer, oneTBB runs every parallel algorithm on the calling thread. Debian's
// libtbb is not instrumented, so TSan cannot see the happens-before its task scheduler creates
// between the thread that splits a range and the worker that steals it, and reports races inside
// TBB's own partitioner (tbb/partitioner.h, check_being_stolen). With one thread per algorithm
// there is nothing to steal; the threads this project starts itself (the daemon's, the sequence
// scheduler's and write-back workers, the tests' own) are all still checked.
#include <gtest/gtest.h>

#if defined(__SANITIZE_THREAD__)
#include <oneapi/tbb/global_control.h>
#endif

int main(int argc, char** argv) {
#if defined(__SANITIZE_THREAD__)
  oneapi::tbb::global_control serial_tbb(oneapi::tbb::global_control::max_allowed_parallelism, 1);
#endif
  testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  const auto* unit = testing::UnitTest::GetInstance();
  if (rc == 0 && unit->test_to_run_count() > 0 && unit->skipped_test_count() == unit->test_to_run_count()) {
    return 77;
  }
  return rc;
}

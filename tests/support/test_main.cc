// gtest main shared by every test. A test binary whose every test was skipped (for example a GPU
// test on a machine without a device) exits 77 so ctest reports it as skipped, not passed.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  const auto* unit = testing::UnitTest::GetInstance();
  if (rc == 0 && unit->test_to_run_count() > 0 && unit->skipped_test_count() == unit->test_to_run_count()) {
    return 77;
  }
  return rc;
}

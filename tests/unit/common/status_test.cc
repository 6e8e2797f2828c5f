#include "common/status.h"

#include <cerrno>

#include <gtest/gtest.h>

#include "common/status_or.h"

namespace kvt {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status Quarter(int x, int* out) {
  KVT_ASSIGN_OR_RETURN(int h, Half(x));
  KVT_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::Ok();
}

TEST(Status, OkHasNoMessage) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(s.message().empty());
}

TEST(Status, ErrorCarriesCodeAndMessage) {
  Status s = NotFound("chunk 3");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: chunk 3");
  EXPECT_EQ(s.WithContext("lookup").ToString(), "NOT_FOUND: lookup: chunk 3");
}

TEST(Status, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoStatus("write", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus("open", EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus("pread", EIO).code(), StatusCode::kIoError);
  EXPECT_NE(ErrnoStatus("pread", EIO).message().find("pread: "), std::string::npos);
}

TEST(StatusOr, PropagatesThroughMacros) {
  int out = 0;
  EXPECT_TRUE(Quarter(12, &out).ok());
  EXPECT_EQ(out, 3);
  Status s = Quarter(6, &out);  // 6 -> 3 -> odd
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd: 3");
}

}  // namespace
}  // namespace kvt

#include "common/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

namespace pkm {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s, OkStatus());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = NotFoundError("models/x/config.json: no such file");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "models/x/config.json: no such file");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: models/x/config.json: no such file");
  EXPECT_NE(s, OkStatus());
}

TEST(StatusTest, OkCodeDropsTheMessage) {
  EXPECT_EQ(Status(StatusCode::kOk, "ignored"), OkStatus());
  EXPECT_EQ(Status(StatusCode::kOk, "ignored").message(), "");
}

// The server casts StatusCode to grpc::StatusCode: the values must be gRPC's.
TEST(StatusTest, CodesHaveAbslAndGrpcValues) {
  EXPECT_EQ(static_cast<int>(StatusCode::kCancelled), 1);
  EXPECT_EQ(static_cast<int>(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(StatusCode::kDeadlineExceeded), 4);
  EXPECT_EQ(static_cast<int>(StatusCode::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(StatusCode::kResourceExhausted), 8);
  EXPECT_EQ(static_cast<int>(StatusCode::kFailedPrecondition), 9);
  EXPECT_EQ(static_cast<int>(StatusCode::kOutOfRange), 11);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnimplemented), 12);
  EXPECT_EQ(static_cast<int>(StatusCode::kInternal), 13);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(StatusCode::kDataLoss), 15);
}

TEST(StatusTest, ErrorHelpersUseTheirCodes) {
  EXPECT_EQ(InvalidArgumentError("m").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FailedPreconditionError("m").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(OutOfRangeError("m").code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ResourceExhaustedError("m").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(UnavailableError("m").code(), StatusCode::kUnavailable);
  EXPECT_EQ(DeadlineExceededError("m").code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(CancelledError("m").code(), StatusCode::kCancelled);
  EXPECT_EQ(UnimplementedError("m").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(InternalError("m").code(), StatusCode::kInternal);
  EXPECT_EQ(DataLossError("m").code(), StatusCode::kDataLoss);
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
}

TEST(StatusOrTest, HoldsAValue) {
  StatusOr<std::string> s = std::string("abc");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s.status().ok());
  EXPECT_EQ(*s, "abc");
  EXPECT_EQ(s->size(), 3u);
  EXPECT_EQ(s.value(), "abc");
}

TEST(StatusOrTest, HoldsAnError) {
  StatusOr<int> s = OutOfRangeError("too long");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(s.status().message(), "too long");
}

TEST(StatusOrTest, OkStatusBecomesInternalError) {
  StatusOr<int> s = OkStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
}

struct Base {
  virtual ~Base() = default;
  virtual int f() const { return 1; }
};
struct Derived : Base {
  int f() const override { return 2; }
};

StatusOr<std::unique_ptr<Base>> MakeDerived() {
  auto d = std::make_unique<Derived>();
  return d;  // unique_ptr<Derived> -> StatusOr<unique_ptr<Base>>
}

TEST(StatusOrTest, MoveOnlyAndConvertingValues) {
  StatusOr<std::unique_ptr<Base>> s = MakeDerived();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->f(), 2);
  std::unique_ptr<Base> taken = std::move(s).value();
  EXPECT_EQ(taken->f(), 2);
}

TEST(StatusOrDeathTest, ValueOfAnErrorAborts) {
  StatusOr<int> s = NotFoundError("the thing");
  EXPECT_DEATH((void)s.value(), "called on an error: NOT_FOUND: the thing");
}

Status FailIf(bool fail) { return fail ? InvalidArgumentError("failed") : OkStatus(); }

Status UsesReturnIfError(bool fail, int* reached) {
  PKM_RETURN_IF_ERROR(FailIf(fail));
  ++*reached;
  return OkStatus();
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesErrorsOnly) {
  int reached = 0;
  EXPECT_TRUE(UsesReturnIfError(false, &reached).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(UsesReturnIfError(true, &reached).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 1);
}

StatusOr<std::pair<int, int>> MakePair(bool fail) {
  if (fail) return DataLossError("no pair");
  return std::pair<int, int>(3, 4);
}

StatusOr<int> SumPair(bool fail) {
  PKM_ASSIGN_OR_RETURN(auto p, MakePair(fail));  // declares p
  int sum = 0;
  PKM_ASSIGN_OR_RETURN(sum, StatusOr<int>(p.first + p.second));  // assigns an existing variable
  return sum;
}

TEST(StatusMacrosTest, AssignOrReturnAssignsOrPropagates) {
  StatusOr<int> ok = SumPair(false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 7);
  StatusOr<int> err = SumPair(true);
  EXPECT_EQ(err.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(err.status().message(), "no pair");
}

}  // namespace
}  // namespace pkm

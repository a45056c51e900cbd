#include "model_loader/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using testing::IsError;
using testing::TempDir;
using testing::TestTensor;
using testing::WriteRawSafetensors;

class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes a file made of `header` and `data` and returns the status of opening it.
  Status OpenRaw(std::string_view header, std::string_view data) {
    WriteRawSafetensors(path_, header, data);
    return SafetensorsFile::Open(path_).status();
  }

  TempDir dir_;
  const std::string path_ = dir_.Join("model.safetensors");
};

TEST_F(SafetensorsTest, ReadsTensorsAndMetadata) {
  std::map<std::string, TestTensor> tensors = {
      {"b.f16", {DType::kF16, {2, 2}, {1.0f, -2.0f, 0.5f, 65504.0f}}},
      {"a.f32", {DType::kF32, {3}, {0.1f, 0.2f, 0.3f}}},
      {"c.bf16", {DType::kBF16, {1}, {1.0f}}},
      {"d.i32", {DType::kI32, {2}, {7.0f, -3.0f}}},
      {"e.i64", {DType::kI64, {1}, {12345.0f}}},
  };
  testing::WriteSafetensors(path_, tensors, {{"format", "pt"}});
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status();

  ASSERT_EQ(file->tensors().size(), 5u);
  EXPECT_EQ(file->tensors()[0].name, "a.f32");  // sorted by name
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->path(), path_);
  EXPECT_EQ(file->file_size(), std::filesystem::file_size(path_));
  EXPECT_EQ(file->Find("absent"), nullptr);

  const TensorView* f16 = file->Find("b.f16");
  ASSERT_NE(f16, nullptr);
  EXPECT_EQ(f16->dtype, DType::kF16);
  EXPECT_EQ(f16->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(f16->nbytes, 8u);
  EXPECT_EQ(ToFloat32(*f16), (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f}));
  EXPECT_EQ(ToFloat32(*file->Find("a.f32")), (std::vector<float>{0.1f, 0.2f, 0.3f}));
  EXPECT_EQ(ToFloat32(*file->Find("c.bf16")), std::vector<float>{1.0f});
  EXPECT_EQ(ToInt64(*file->Find("d.i32")), (std::vector<int64_t>{7, -3}));
  EXPECT_EQ(ToInt64(*file->Find("e.i64")), std::vector<int64_t>{12345});
}

TEST_F(SafetensorsTest, AcceptsGapsAnyOrderAndEmptyTensors) {
  const float data[] = {0, 0, 1, 2, 3, 4};  // an 8-byte gap, then b, then a
  ASSERT_TRUE(OpenRaw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]},
                          "b": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]},
                          "empty": {"dtype": "F16", "shape": [0, 5], "data_offsets": [8, 8]},
                          "scalar": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})",
                      std::string_view(reinterpret_cast<const char*>(data), sizeof(data)))
                  .ok());
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(ToFloat32(*file->Find("a")), std::vector<float>{4});
  EXPECT_EQ(ToFloat32(*file->Find("b")), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(file->Find("empty")->numel(), 0u);
  EXPECT_EQ(file->Find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_TRUE(file->metadata().empty());
}

TEST_F(SafetensorsTest, MoveAssignmentReplacesTheMapping) {
  testing::WriteSafetensors(path_, {{"x", {DType::kF32, {2}, {5.0f, 6.0f}}}});
  testing::WriteSafetensors(dir_.Join("other"), {{"y", {DType::kF32, {1}, {1.0f}}}});
  StatusOr<SafetensorsFile> first = SafetensorsFile::Open(path_);
  StatusOr<SafetensorsFile> second = SafetensorsFile::Open(dir_.Join("other"));
  ASSERT_TRUE(first.ok() && second.ok());
  SafetensorsFile file = std::move(first).value();
  file = std::move(second).value();  // unmaps the first file
  EXPECT_EQ(file.Find("x"), nullptr);
  EXPECT_EQ(ToFloat32(*file.Find("y")), std::vector<float>{1.0f});
  EXPECT_EQ(file.path(), dir_.Join("other"));
}

TEST_F(SafetensorsTest, ViewDataStaysValidAfterMove) {
  testing::WriteSafetensors(path_, {{"x", {DType::kF32, {2}, {5.0f, 6.0f}}}});
  StatusOr<SafetensorsFile> opened = SafetensorsFile::Open(path_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const std::byte* data = opened->Find("x")->data;
  SafetensorsFile moved(std::move(opened).value());
  EXPECT_EQ(moved.Find("x")->data, data);
  EXPECT_EQ(ToFloat32(*moved.Find("x")), (std::vector<float>{5.0f, 6.0f}));
}

TEST_F(SafetensorsTest, MissingFile) {
  EXPECT_TRUE(IsError(SafetensorsFile::Open(path_).status(), StatusCode::kNotFound,
                      {path_, "no such file"}));
}

TEST_F(SafetensorsTest, DirectoryIsNotAFile) {
  EXPECT_TRUE(IsError(SafetensorsFile::Open(dir_.path()).status(), StatusCode::kFailedPrecondition,
                      {dir_.path(), "not a regular file"}));
}

TEST_F(SafetensorsTest, ShorterThanEightBytes) {
  testing::WriteFile(path_, "abcde");
  EXPECT_TRUE(IsError(SafetensorsFile::Open(path_).status(), StatusCode::kDataLoss,
                      {path_, "5 bytes", "8-byte header length"}));
  testing::WriteFile(path_, "");
  EXPECT_TRUE(
      IsError(SafetensorsFile::Open(path_).status(), StatusCode::kDataLoss, {path_, "0 bytes"}));
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  WriteRawSafetensors(path_, "{}", "", 1000);
  EXPECT_TRUE(IsError(SafetensorsFile::Open(path_).status(), StatusCode::kDataLoss,
                      {path_, "header length 1000", "past the end of the file (10 bytes)"}));
  // A length near 2^64 must not wrap around in the bound check.
  WriteRawSafetensors(path_, "{}", "", ~uint64_t{0});
  EXPECT_TRUE(IsError(SafetensorsFile::Open(path_).status(), StatusCode::kDataLoss,
                      {path_, "header length 18446744073709551615"}));
}

TEST_F(SafetensorsTest, MalformedHeaderJson) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"a": {"dtype": "F32",)", ""), StatusCode::kDataLoss,
                      {path_, "malformed header JSON", "line 1, column"}));
}

TEST_F(SafetensorsTest, HeaderNumberOverflowIsAnError) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"__metadata__": {"n": -1e400}})", ""), StatusCode::kDataLoss,
                      {path_, "malformed header JSON", "number overflow"}));
}

TEST_F(SafetensorsTest, HeaderMustBeAnObject) {
  EXPECT_TRUE(IsError(OpenRaw("[1]", ""), StatusCode::kDataLoss, {path_, "JSON object"}));
}

TEST_F(SafetensorsTest, EntryMustBeComplete) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F32", "shape": [1]}})", "abcd"),
                      StatusCode::kDataLoss, {path_, "tensor 'w'", "data_offsets"}));
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": 3})", "abcd"), StatusCode::kDataLoss,
                      {path_, "tensor 'w'", "expected an object"}));
}

TEST_F(SafetensorsTest, UnknownDType) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})",
                              std::string(8, '\0')),
                      StatusCode::kUnimplemented,
                      {path_, "tensor 'w'", "\"F64\"", "F32, F16, BF16"}));
}

TEST_F(SafetensorsTest, NegativeDimension) {
  EXPECT_TRUE(
      IsError(OpenRaw(R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 4]}})",
                      std::string(4, '\0')),
              StatusCode::kDataLoss, {path_, "tensor 'w'", "[2,-3]", "negative"}));
}

TEST_F(SafetensorsTest, ShapeOverflow) {
  EXPECT_TRUE(IsError(
      OpenRaw(
          R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
          std::string(4, '\0')),
      StatusCode::kDataLoss, {path_, "tensor 'w'", "overflows"}));
  // numel fits, numel * 4 bytes does not
  EXPECT_TRUE(IsError(
      OpenRaw(R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}})",
              std::string(4, '\0')),
      StatusCode::kDataLoss, {path_, "tensor 'w'", "overflows"}));
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})",
                              std::string(16, '\0')),
                      StatusCode::kDataLoss,
                      {path_, "tensor 'w'", "data_offsets [0, 64]", "past the end", "16 bytes"}));
}

TEST_F(SafetensorsTest, NegativeOrReversedOffsets) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})",
                              std::string(8, '\0')),
                      StatusCode::kDataLoss, {path_, "tensor 'w'", "non-negative"}));
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})",
                              std::string(8, '\0')),
                      StatusCode::kDataLoss, {path_, "tensor 'w'", "begin > end"}));
}

TEST_F(SafetensorsTest, SizeDoesNotMatchShape) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 12]}})",
                              std::string(16, '\0')),
                      StatusCode::kDataLoss,
                      {path_, "tensor 'w'", "span 12 bytes", "[4]", "needs 8"}));
}

TEST_F(SafetensorsTest, OverlappingRanges) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
                          "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                              std::string(24, '\0')),
                      StatusCode::kDataLoss, {path_, "'a' [0, 16)", "'b' [8, 24)", "overlap"}));
}

TEST_F(SafetensorsTest, IdenticalRangesOverlap) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "y": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})",
                              std::string(8, '\0')),
                      StatusCode::kDataLoss, {path_, "'x'", "'y'", "overlap"}));
}

TEST_F(SafetensorsTest, TruncatedFile) {
  testing::WriteSafetensors(
      path_, {{"a", {DType::kF32, {4}, {1, 2, 3, 4}}}, {"z", {DType::kF32, {4}, {5, 6, 7, 8}}}});
  std::filesystem::resize_file(path_, std::filesystem::file_size(path_) - 3);
  EXPECT_TRUE(IsError(SafetensorsFile::Open(path_).status(), StatusCode::kDataLoss,
                      {path_, "tensor 'z'", "truncated"}));
}

TEST_F(SafetensorsTest, MetadataMustMapStringsToStrings) {
  EXPECT_TRUE(IsError(OpenRaw(R"({"__metadata__": {"format": 1}})", ""), StatusCode::kDataLoss,
                      {path_, "__metadata__", "'format'"}));
}

}  // namespace
}  // namespace pkm

// --device's backend choice: the CPU on request, clear errors for a bad name, a missing plugin
// or a library that is not one, and, with this build's plugin, either the CUDA backend (on a
// GPU machine) or, without a usable GPU, the CPU under auto and the same reason as an error
// under cuda.
#include "engine/backend_loader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace pkm {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(BackendLoader, CpuIsTheCpu) {
  StatusOr<BackendChoice> choice = MakeBackend("cpu", 2, "/nonexistent/libpkm_cuda.so");
  ASSERT_TRUE(choice.ok()) << choice.status().ToString();
  EXPECT_EQ(choice->device, "cpu");
  EXPECT_EQ(choice->backend->name(), "cpu");
  EXPECT_EQ(choice->description, "cpu: 2 threads");
  EXPECT_EQ(choice->fallback, "");
}

TEST(BackendLoader, AnUnknownDeviceIsRefusedWithTheChoices) {
  StatusOr<BackendChoice> choice = MakeBackend("gpu", 2);
  ASSERT_FALSE(choice.ok());
  EXPECT_EQ(choice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(choice.status().message(), "--device must be auto, cpu or cuda, got 'gpu'");
}

TEST(BackendLoader, AMissingPluginFallsBackUnderAutoAndFailsUnderCuda) {
  const std::string missing = "/nonexistent/libpkm_cuda.so";
  StatusOr<BackendChoice> autod = MakeBackend("auto", 2, missing);
  ASSERT_TRUE(autod.ok());
  EXPECT_EQ(autod->device, "cpu");
  EXPECT_TRUE(Contains(autod->fallback, "cannot load the CUDA backend " + missing))
      << autod->fallback;
  StatusOr<BackendChoice> cuda = MakeBackend("cuda", 2, missing);
  ASSERT_FALSE(cuda.ok());
  EXPECT_EQ(cuda.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(cuda.status().message(), "--device=cuda: cannot load the CUDA backend"))
      << cuda.status().message();
}

TEST(BackendLoader, ALibraryThatIsNotThePluginIsNamed) {
  StatusOr<std::unique_ptr<Backend>> b = LoadCudaBackend("libm.so.6", 0, nullptr);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(),
            "libm.so.6 is not a pkmserve CUDA backend (no PkmCudaBackendCreate)");
}

TEST(BackendLoader, TheEnvironmentVariableNamesThePlugin) {
  setenv("PKMSERVE_CUDA_PLUGIN", "/opt/elsewhere/libpkm_cuda.so", 1);
  EXPECT_EQ(DefaultCudaPluginPath(), "/opt/elsewhere/libpkm_cuda.so");
  unsetenv("PKMSERVE_CUDA_PLUGIN");
  EXPECT_NE(DefaultCudaPluginPath(), "/opt/elsewhere/libpkm_cuda.so");
}

TEST(BackendLoader, ThisBuildsPluginRunsOrSaysWhyNot) {
  const std::string plugin = PKM_CUDA_PLUGIN;
  if (plugin.empty()) GTEST_SKIP() << "this build has no CUDA plugin (PKMSERVE_WITH_CUDA off)";
  EXPECT_EQ(DefaultCudaPluginPath(), plugin) << "found next to the executables";
  StatusOr<BackendChoice> autod = MakeBackend("auto", 2, plugin);
  ASSERT_TRUE(autod.ok());
  StatusOr<BackendChoice> cuda = MakeBackend("cuda", 2, plugin);
  if (autod->device == "cuda") {  // a GPU machine
    EXPECT_EQ(autod->backend->name(), "cuda");
    EXPECT_TRUE(Contains(autod->description, "compute capability")) << autod->description;
    ASSERT_TRUE(cuda.ok()) << cuda.status().ToString();
    EXPECT_GT(cuda->backend->memory_total_bytes(), size_t{0});
  } else {  // the plugin loads, the device does not
    EXPECT_TRUE(Contains(autod->fallback, "no CUDA device")) << autod->fallback;
    ASSERT_FALSE(cuda.ok());
    EXPECT_EQ(cuda.status().message(), "--device=cuda: " + autod->fallback);
  }
}

}  // namespace
}  // namespace pkm

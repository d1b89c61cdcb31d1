#include "core/subprocess.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace snapvol {
namespace {

TEST(RunCommand, FeedsItsInputAndGathersItsOutput) {
  auto r = RunCommand({"cat"}, "hello\n", 10'000);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "hello\n");
}

TEST(RunCommand, AFailureIsAResultWithItsExitCodeAndTheEndOfItsOutput) {
  auto r = RunCommand({"sh", "-c", "echo first; echo 'bad superblock' >&2; exit 3"}, "", 10'000);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->Describe(10'000), "exited 3: first\nbad superblock");
  auto killed = RunCommand({"sh", "-c", "kill -TERM $$"}, "", 10'000);
  ASSERT_TRUE(killed);
  EXPECT_FALSE(killed->ok());
  EXPECT_EQ(killed->signal, 15);
  EXPECT_EQ(killed->Describe(10'000), "was killed by signal 15");
}

TEST(RunCommand, TheDeadlineKillsIt) {
  auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"sh", "-c", "echo started; exec sleep 30"}, "", 300);
  ASSERT_TRUE(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->Describe(300), "did not finish within 0.3 s (killed): started");
  EXPECT_EQ(r->Describe(60'000), "did not finish within 60 s (killed): started");
}

TEST(RunCommand, OutputBeyondTheCapIsDroppedAndInputItNeverReadsDoesNotHurt) {
  // 1 MiB of output against a 100-byte cap: the child is never blocked on a full pipe.
  auto r = RunCommand({"sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"}, "", 10'000, 100);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok()) << r->Describe(10'000);
  EXPECT_EQ(r->output, std::string(100, 'x'));
  // A child that exits without reading 4 MiB of input: no SIGPIPE reaches this process.
  std::string write_error;
  auto early = RunCommand({"true"}, std::string(4 << 20, 'y'), 10'000, 1024, &write_error);
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->ok());
  EXPECT_FALSE(write_error.empty());
}

TEST(RunCommand, AProgramThatCannotStartIsAnError) {
  auto r = RunCommand({"/nonexistent/snapvol-check"}, "", 1'000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.error().message().find("/nonexistent/snapvol-check"), std::string::npos);
  EXPECT_EQ(RunCommand({}, "", 1'000).error().code(), ErrorCode::kInvalidArgument);
}

TEST(RunCommand, TheEnvironmentGivenIsAllTheChildSees) {
  setenv("SNAPVOL_TEST_LEAK", "daemon-only", 1);
  std::vector<std::string> env = {"SNAPVOL_INSTANCE_ID=i-1", "PATH=/usr/bin:/bin"};
  auto r = RunCommand({"sh", "-c", "echo \"$SNAPVOL_INSTANCE_ID/${SNAPVOL_TEST_LEAK:-unset}\""}, "", 10'000, 1024,
                      nullptr, &env);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->output, "i-1/unset\n");
  auto inherited = RunCommand({"sh", "-c", "echo \"${SNAPVOL_TEST_LEAK:-unset}\""}, "", 10'000);
  ASSERT_TRUE(inherited);
  EXPECT_EQ(inherited->output, "daemon-only\n");
  unsetenv("SNAPVOL_TEST_LEAK");
}

TEST(RunCommand, TheDeadlineKillsWhatTheProgramStartedToo) {
  char dir[] = "/tmp/snapvol-subprocess-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string marker = std::string(dir) + "/late";
  // The shell's child would write the marker after 1 s had the timeout killed the shell alone.
  auto r = RunCommand({"sh", "-c", "(sleep 1; touch " + marker + ") & sleep 30"}, "", 200);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "a child of the timed-out command lived on";
  unlink(marker.c_str());
  rmdir(dir);
}

TEST(SplitCommandLine, BlanksQuotesAndBackslashesOnly) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*SplitCommandLine("virsh domfsfreeze  team1"), (V{"virsh", "domfsfreeze", "team1"}));
  EXPECT_EQ(*SplitCommandLine("sh -c 'sync; fsfreeze -f /mnt/$X' "), (V{"sh", "-c", "sync; fsfreeze -f /mnt/$X"}));
  EXPECT_EQ(*SplitCommandLine(R"(echo "a \"b\" \\ \n" c\ d '')"), (V{"echo", R"(a "b" \ \n)", "c d", ""}));
  EXPECT_EQ(*SplitCommandLine("echo a|b >c;d $HOME *"), (V{"echo", "a|b", ">c;d", "$HOME", "*"}));
  EXPECT_EQ(*SplitCommandLine("x'y'\"z\""), (V{"xyz"}));
  for (const char* bad : {"", "   ", "echo 'open", "echo \"open", "echo trailing\\"}) {
    auto r = SplitCommandLine(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace snapvol

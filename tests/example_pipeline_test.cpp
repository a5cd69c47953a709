// examples/pipeline (goro-pipeline), run as a child process: its results on
// the built-in sample and on standard input, bad input (exit 1 with the
// line named), usage errors (exit 2), and Ctrl-C (exit 130 with what it
// finished), the last driven deterministically: the test holds the child's
// stdin open, waits for the progress line that shows every line written so
// far was processed, then sends SIGINT.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

#ifdef GORO_PIPELINE_EXAMPLE

struct child {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // our ends of its stdin, stdout, stderr
};

child spawn_example(const std::vector<std::string>& args) {
  int in[2], out[2], err[2];
  EXPECT_EQ(pipe(in), 0);
  EXPECT_EQ(pipe(out), 0);
  EXPECT_EQ(pipe(err), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
    posix_spawn_file_actions_addclose(&fa, fd);
  std::vector<std::string> all{GORO_PIPELINE_EXAMPLE};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  child c;
  EXPECT_EQ(posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  c.in = in[1];
  c.out = out[0];
  c.err = err[0];
  return c;
}

std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return s;
}

struct result {
  int code = -1;
  std::string out, err;
};

result finish(child& c) {
  if (c.in >= 0) close(c.in);
  result r;
  r.err = read_all(c.err);  // small outputs: no deadlock reading one after the other
  r.out = read_all(c.out);
  int status = 0;
  EXPECT_EQ(waitpid(c.pid, &status, 0), c.pid);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

result run_example(const std::vector<std::string>& args, const std::string& input = "") {
  child c = spawn_example(args);
  if (!input.empty()) {
    EXPECT_EQ(write(c.in, input.data(), input.size()), static_cast<ssize_t>(input.size()));
  }
  return finish(c);
}

TEST(example_pipeline, counts_the_built_in_sample) {
  const result r = run_example({"--repeat", "10", "--top", "3", "--workers", "3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("100 lines, 1430 words"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("with 3 workers per stage"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("top 3:\n        90  a\n        90  the\n        70  and\n"),
            std::string::npos)
      << r.out;
}

TEST(example_pipeline, counts_standard_input) {
  const result r = run_example({"--input", "-", "--top", "2"}, "Hello world, hello!\nGo go GO\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 lines, 6 words, 3 distinct"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("         3  go\n         2  hello\n"), std::string::npos) << r.out;
}

TEST(example_pipeline, bad_input_names_the_line_and_exits_1) {
  const std::string path = testing::TempDir() + "goro_bad_input.txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << "fine\nalso fine\nbroken \xC3\x28 here\nnever read\n";
  }
  result r = run_example({"--input", path});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad input: line 3: invalid UTF-8 (byte 0xc3 at column 8)"),
            std::string::npos)
      << r.err;
  r = run_example({"--input", path + ".missing"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
}

TEST(example_pipeline, usage_errors_exit_2) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--workers", "0"}, {"--bogus"}, {"--repeat"}}) {
    const result r = run_example(args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_NE(r.err.find("usage:"), std::string::npos) << r.err;
  }
}

TEST(example_pipeline, ctrl_c_stops_cleanly_and_reports_what_finished) {
  child c = spawn_example({"--input", "-", "--progress"});
  std::string lines;
  for (int i = 0; i < 40; ++i) lines += "alpha beta gamma\n";
  ASSERT_EQ(write(c.in, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  // Wait (bounded) for the child to report all 40 lines processed.
  std::string err;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (err.find("progress: 40 lines, 120 words") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no progress line; stderr so far:\n"
                                                          << err;
    pollfd p{c.err, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char buf[1024];
    const ssize_t n = read(c.err, buf, sizeof buf);
    ASSERT_GT(n, 0) << "child closed stderr early:\n" << err;
    err.append(buf, static_cast<std::size_t>(n));
  }
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  const int in = c.in;
  c.in = -1;  // keep stdin open until the child is gone: the interrupt alone must stop it
  const result r = finish(c);
  close(in);
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_NE(r.out.find("interrupted: processed 40 lines, 120 words"), std::string::npos) << r.out;
}

#else
TEST(example_pipeline, built) {
  GTEST_SKIP() << "examples are not built (GORO_BUILD_EXAMPLES=OFF)";
}
#endif

}  // namespace

// Runs a program (the cxpulse binary, kcat) to its end as a user would, its
// stdout and stderr together in one file, and reads files back.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace cxpulse::testing {

struct CommandRun {
  int code;            // -1: did not exit within the timeout
  std::string output;  // stdout and stderr
};

inline CommandRun RunProgram(const TempDir& dir, const std::string& program, const std::vector<std::string>& args,
                             std::chrono::seconds timeout = std::chrono::seconds(60)) {
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p(argv, dir.path() + "/out.txt");
  const int code = p.Wait(timeout);
  return {code, p.Output()};
}

#ifdef CXPULSE_BINARY
inline CommandRun Cxpulse(const TempDir& dir, const std::vector<std::string>& args) {
  return RunProgram(dir, CXPULSE_BINARY, args);
}
#endif

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every message of a JSON-lines file (the canonical proto3 JSON mapping, one
// message a line). A line that does not parse fails the test.
template <typename Message>
std::vector<Message> ReadJsonLines(const std::string& path) {
  std::vector<Message> messages;
  for (const std::string& line : ReadLines(path)) {
    Message m;
    const auto status = google::protobuf::util::JsonStringToMessage(line, &m);
    EXPECT_TRUE(status.ok()) << status.ToString() << ": " << line;
    messages.push_back(std::move(m));
  }
  return messages;
}

}  // namespace cxpulse::testing

// `cxpulse replay`: the rules over recorded events (what `cxpulse gen` writes,
// or events exported from the input topic), printing the findings and, against
// a baseline rule set, how many each rule gives more or fewer. What on-call
// staff run before a rule change goes live. Runs on the main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace cxpulse {

class ReplayCommand {
 public:
  // Registers `replay` and its options on `app`; parsing fills this object.
  explicit ReplayCommand(CLI::App& app);

  ReplayCommand(const ReplayCommand&) = delete;
  ReplayCommand& operator=(const ReplayCommand&) = delete;

  bool parsed() const { return command_->parsed(); }
  // Returns the exit code: 0 every event read and replayed, 1 a bad input
  // line (the rest still replayed), rules that do not load, or a file that
  // cannot be read or written.
  int Run() const;

 private:
  CLI::App* command_;
  std::string rules_;
  std::string input_;
  std::string format_ = "jsonl";
  std::string baseline_;
  std::string output_ = "-";
  std::string allowed_lateness_ = "30s";
  bool diff_ = false;
};

}  // namespace cxpulse

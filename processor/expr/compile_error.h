// CompileError: why a `where` expression was refused, and where. `offset` is
// the 0-based character offset in the expression text at which the problem
// starts, so a rule loader can turn it into file:line:col. A plain value; any
// thread.
#pragma once

#include <cstddef>
#include <string>

namespace cxpulse::expr {

struct CompileError {
  size_t offset = 0;
  std::string message;  // in rule-author terms: names the fields and types involved
};

}  // namespace cxpulse::expr

// CompileProgram: parses and type-checks the text of a `where` expression
// against cx.v1.InteractionEvent into a Program. Runs on the control thread
// while rules load, never on the data path; pure, so any thread.
#pragma once

#include <memory>
#include <string_view>
#include <variant>

#include "expr/compile_error.h"
#include "expr/program.h"

namespace cxpulse::expr::internal {

// Nesting beyond this is refused, which bounds the evaluator's recursion.
inline constexpr int kMaxDepth = 64;

std::variant<std::shared_ptr<const Program>, CompileError> CompileProgram(std::string_view text);

}  // namespace cxpulse::expr::internal

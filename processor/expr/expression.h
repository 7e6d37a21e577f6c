// Expression: a compiled `where` expression of a rule file, e.g.
//   survey.metric == "nps" and survey.score <= 6
// parsed and type-checked once against cx.v1.InteractionEvent, then evaluated
// per event without parsing or allocating. Evaluate is const but writes
// per-instance scratch buffers (lower()), so an Expression is owned by ONE
// thread; copies are cheap (they share the immutable compiled program and
// allocate only their own scratch), so give each shard its own copy.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cx/v1/event.pb.h"
#include "expr/compile_error.h"
#include "expr/value.h"

namespace cxpulse::expr {

namespace internal {
struct Program;
}

class Expression {
 public:
  // Parses and type-checks `text`. Never throws; an error carries the offset
  // in `text` where the problem starts.
  [[nodiscard]] static std::variant<Expression, CompileError> Compile(std::string_view text);

  // As Compile, and the expression must be a condition (type bool).
  [[nodiscard]] static std::variant<Expression, CompileError> CompileCondition(std::string_view text);

  Expression(const Expression& other);
  Expression& operator=(const Expression& other);
  Expression(Expression&&) noexcept = default;  // a moved-from Expression may only be assigned or destroyed
  Expression& operator=(Expression&&) noexcept = default;
  ~Expression();

  Type type() const;

  // The value for `event`. A string result views the event, this Expression's
  // compiled literals or its scratch: valid until the event changes or this
  // Expression is evaluated again. Arithmetic on ints, durations and
  // timestamps saturates at the int64 range; dividing a duration by zero gives
  // the saturated duration of its sign (0 for 0). Never throws or allocates
  // once warm (a scratch buffer grows only past the longest string seen).
  Value Evaluate(const cx::v1::InteractionEvent& event) const;

  // Evaluate(event).b for a bool expression; false for any other type.
  bool Matches(const cx::v1::InteractionEvent& event) const;

  const std::string& text() const;

  // The oneof field numbers of InteractionEvent.body whose fields the
  // expression reads, ascending; empty if it reads none.
  std::vector<int> BodiesReferenced() const;

 private:
  explicit Expression(std::shared_ptr<const internal::Program> program);

  std::shared_ptr<const internal::Program> program_;
  mutable std::vector<std::string> scratch_;  // by Node::scratch; written by Evaluate
};

}  // namespace cxpulse::expr

#include "expr/expression.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "common/strings.h"
#include "expr/compiler.h"
#include "expr/program.h"

namespace cxpulse::expr {
namespace {

using internal::Node;
using internal::Op;
using internal::Program;

// Enough for the strings rules usually lower (categories, tiers, queues)
// without growing; longer ones grow a buffer once and it is kept.
constexpr size_t kScratchReserve = 64;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? kMax : kMin;
  return out;
}

int64_t SaturatingSub(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) return b < 0 ? kMax : kMin;
  return out;
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return (a < 0) == (b < 0) ? kMax : kMin;
  return out;
}

int64_t SaturatingDiv(int64_t a, int64_t b) {
  if (b == 0) return a > 0 ? kMax : a < 0 ? kMin : 0;
  if (a == kMin && b == -1) return kMax;
  return a / b;
}

int64_t SaturatingFromDouble(double x) {
  if (std::isnan(x)) return 0;
  // 2^63 is exactly representable; anything at or past it saturates.
  if (x >= 9223372036854775808.0) return kMax;
  if (x <= -9223372036854775808.0) return kMin;
  return static_cast<int64_t>(std::llround(x));
}

double AsDouble(const Value& v) { return v.type == Type::kDouble ? v.d : static_cast<double>(v.i); }

template <typename T>
bool Compare(Op op, const T& a, const T& b) {
  switch (op) {
    case Op::kEq:
      return a == b;
    case Op::kNe:
      return a != b;
    case Op::kLt:
      return a < b;
    case Op::kLe:
      return a <= b;
    case Op::kGt:
      return a > b;
    case Op::kGe:
      return a >= b;
    default:
      return false;
  }
}

bool Compare(Op op, Type operand, const Value& a, const Value& b) {
  switch (operand) {
    case Type::kDouble:
      return Compare(op, AsDouble(a), AsDouble(b));
    case Type::kBool:
      return Compare(op, a.b, b.b);
    case Type::kString:
      return Compare(op, a.s, b.s);
    default:  // int, duration, timestamp
      return Compare(op, a.i, b.i);
  }
}

Value ConstantOf(const Node& n) {
  Value v;
  v.type = n.type;
  v.b = n.b;
  v.i = n.i;
  v.d = n.d;
  v.s = n.s;
  return v;
}

// One evaluation: recursion over the node tree (depth bounded at compile
// time), short-circuiting `and` and `or`.
class Evaluator {
 public:
  Evaluator(const Program& program, const cx::v1::InteractionEvent& event, std::vector<std::string>& scratch)
      : program_(program), event_(event), scratch_(scratch) {}

  Value Eval(int index) {
    const Node& n = program_.nodes[static_cast<size_t>(index)];
    Value v;
    v.type = n.type;
    switch (n.op) {
      case Op::kConst:
        return ConstantOf(n);
      case Op::kField:
        return program_.fields[static_cast<size_t>(n.field)].Read(event_, n.scratch >= 0 ? Scratch(n) : nullptr);
      case Op::kNot:
        v.b = !Eval(n.lhs).b;
        return v;
      case Op::kAnd:
        v.b = Eval(n.lhs).b && Eval(n.rhs).b;
        return v;
      case Op::kOr:
        v.b = Eval(n.lhs).b || Eval(n.rhs).b;
        return v;
      case Op::kNeg: {
        const Value a = Eval(n.lhs);
        if (n.type == Type::kDouble) {
          v.d = -a.d;
        } else {
          v.i = SaturatingSub(0, a.i);
        }
        return v;
      }
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
        return Arithmetic(n, Eval(n.lhs), Eval(n.rhs));
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        const Value a = Eval(n.lhs);
        v.b = Compare(n.op, n.operand, a, Eval(n.rhs));
        return v;
      }
      case Op::kIn: {
        const Value a = Eval(n.lhs);
        for (int e : n.list) {
          if (Compare(Op::kEq, n.operand, a, ConstantOf(program_.nodes[static_cast<size_t>(e)]))) {
            v.b = true;
            break;
          }
        }
        return v;
      }
      case Op::kStartsWith: {
        const Value a = Eval(n.lhs);
        v.b = a.s.starts_with(Eval(n.rhs).s);
        return v;
      }
      case Op::kEndsWith: {
        const Value a = Eval(n.lhs);
        v.b = a.s.ends_with(Eval(n.rhs).s);
        return v;
      }
      case Op::kContains: {
        const Value a = Eval(n.lhs);
        v.b = a.s.find(Eval(n.rhs).s) != std::string_view::npos;
        return v;
      }
      case Op::kLower: {
        const Value a = Eval(n.lhs);
        std::string* out = Scratch(n);
        out->assign(a.s.data(), a.s.size());  // reuses the buffer's capacity
        for (char& c : *out) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        v.s = *out;
        return v;
      }
    }
    return v;
  }

 private:
  std::string* Scratch(const Node& n) { return &scratch_[static_cast<size_t>(n.scratch)]; }

  static Value Arithmetic(const Node& n, const Value& a, const Value& b) {
    Value v;
    v.type = n.type;
    if (n.type == Type::kDouble) {  // numbers, at least one double, or a division
      const double x = AsDouble(a);
      const double y = AsDouble(b);
      switch (n.op) {
        case Op::kAdd:
          v.d = x + y;
          break;
        case Op::kSub:
          v.d = x - y;
          break;
        case Op::kMul:
          v.d = x * y;
          break;
        default:
          v.d = x / y;
          break;
      }
      return v;
    }
    if (n.operand == Type::kDouble) {  // a duration scaled by a double
      const bool a_double = a.type == Type::kDouble;
      const double factor = a_double ? a.d : b.d;
      const double micros = static_cast<double>(a_double ? b.i : a.i);
      v.i = SaturatingFromDouble(n.op == Op::kMul ? micros * factor : micros / factor);
      return v;
    }
    switch (n.op) {
      case Op::kAdd:
        v.i = SaturatingAdd(a.i, b.i);
        break;
      case Op::kSub:
        v.i = SaturatingSub(a.i, b.i);
        break;
      case Op::kMul:
        v.i = SaturatingMul(a.i, b.i);
        break;
      default:
        v.i = SaturatingDiv(a.i, b.i);
        break;
    }
    return v;
  }

  const Program& program_;
  const cx::v1::InteractionEvent& event_;
  std::vector<std::string>& scratch_;
};

std::vector<std::string> FreshScratch(const Program& program) {
  std::vector<std::string> scratch(static_cast<size_t>(program.scratch_slots));
  for (const Node& n : program.nodes) {
    if (n.op == Op::kLower) scratch[static_cast<size_t>(n.scratch)].reserve(kScratchReserve);
  }
  return scratch;
}

}  // namespace

std::variant<Expression, CompileError> Expression::Compile(std::string_view text) {
  auto compiled = internal::CompileProgram(text);
  if (auto* error = std::get_if<CompileError>(&compiled)) return std::move(*error);
  return Expression(std::get<std::shared_ptr<const Program>>(std::move(compiled)));
}

std::variant<Expression, CompileError> Expression::CompileCondition(std::string_view text) {
  auto compiled = Compile(text);
  if (auto* e = std::get_if<Expression>(&compiled); e != nullptr && e->type() != Type::kBool) {
    return CompileError{0, Cat("expected a condition (true or false), but this expression is ", TypeName(e->type()))};
  }
  return compiled;
}

Expression::Expression(std::shared_ptr<const Program> program)
    : program_(std::move(program)), scratch_(FreshScratch(*program_)) {}

Expression::Expression(const Expression& other) : program_(other.program_), scratch_(FreshScratch(*program_)) {}

Expression& Expression::operator=(const Expression& other) {
  if (this != &other) {
    program_ = other.program_;
    scratch_ = FreshScratch(*program_);
  }
  return *this;
}

Expression::~Expression() = default;

Type Expression::type() const { return program_->nodes[static_cast<size_t>(program_->root)].type; }

Value Expression::Evaluate(const cx::v1::InteractionEvent& event) const {
  return Evaluator(*program_, event, scratch_).Eval(program_->root);
}

bool Expression::Matches(const cx::v1::InteractionEvent& event) const {
  if (type() != Type::kBool) return false;
  return Evaluate(event).b;
}

const std::string& Expression::text() const { return program_->text; }

std::vector<int> Expression::BodiesReferenced() const { return program_->bodies; }

}  // namespace cxpulse::expr

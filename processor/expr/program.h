// Program: the compiled form of one `where` expression: a tree of typed nodes
// in one vector (children by index), field paths resolved and every type
// decision taken, so evaluation only reads fields and computes. Built by
// CompileProgram, then immutable and shared by every copy of an Expression;
// any thread may read it. Internal to expr/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "expr/field_path.h"
#include "expr/value.h"

namespace cxpulse::expr::internal {

enum class Op {
  kConst,  // b / i / d / s
  kField,  // fields[field]
  kNot,
  kAnd,
  kOr,
  kNeg,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,  // lhs in the kConst nodes `list`
  kStartsWith,
  kEndsWith,
  kContains,
  kLower,  // into scratch[scratch]
};

struct Node {
  Op op = Op::kConst;
  Type type = Type::kBool;  // of the result
  // How the operands are combined. Comparisons: kInt (int, duration and
  // timestamp compare as int64), kDouble, kBool or kString. Arithmetic: kInt
  // (integer math, saturating) or kDouble.
  Type operand = Type::kInt;
  int lhs = -1;      // first operand or argument
  int rhs = -1;      // second
  size_t begin = 0;  // the node's text, [begin, end) in Program::text
  size_t end = 0;
  int depth = 1;  // of the subtree; bounded so evaluation's recursion is

  // kConst
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;

  int field = -1;         // kField: index into Program::fields
  std::vector<int> list;  // kIn: kConst node indices
  int scratch = -1;       // kLower and string kField: index into the Expression's scratch strings
};

struct Program {
  std::string text;
  std::vector<Node> nodes;
  std::vector<FieldPath> fields;
  int root = -1;
  int scratch_slots = 0;
  std::vector<int> bodies;  // sorted, unique: FieldPath::body() of every body field read
};

}  // namespace cxpulse::expr::internal

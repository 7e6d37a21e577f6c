#include "expr/compiler.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "expr/lexer.h"

namespace cxpulse::expr::internal {
namespace {

bool IsNumeric(Type t) { return t == Type::kInt || t == Type::kDouble; }

bool IsComparison(TokenKind k) {
  return k == TokenKind::kEq || k == TokenKind::kNe || k == TokenKind::kLt || k == TokenKind::kLe ||
         k == TokenKind::kGt || k == TokenKind::kGe;
}

struct Function {
  std::string_view name;
  Op op;
  size_t arity;
  Type result;
};

// In the order the "unknown function" message lists them.
constexpr Function kFunctions[] = {
    {"contains", Op::kContains, 2, Type::kBool},
    {"ends_with", Op::kEndsWith, 2, Type::kBool},
    {"lower", Op::kLower, 1, Type::kString},
    {"starts_with", Op::kStartsWith, 2, Type::kBool},
};

// Recursive descent, one function per precedence level, lowest first:
//   or < and < not < comparison, in < + - < * / < unary - < primary.
// Each node is type-checked as it is built, so an error names the operands as
// the author wrote them. Every Parse* returns a node index, or -1 with error_ set.
class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens, Program* program)
      : text_(text), tokens_(std::move(tokens)), program_(program) {}

  std::optional<CompileError> Run() {
    if (Peek().kind == TokenKind::kEnd) return CompileError{0, "empty expression"};
    const int root = ParseOr();
    if (root < 0) return error_;
    if (Peek().kind != TokenKind::kEnd) {
      Fail(Peek().offset, Cat("unexpected ", DescribeToken(Peek()), " after a complete expression"));
      return error_;
    }
    program_->root = root;
    return std::nullopt;
  }

 private:
  // Bounds the parser's own recursion (parentheses, arguments, `not not`,
  // `- -`) before any node exists to carry a depth.
  class Nesting {
   public:
    explicit Nesting(Parser* p) : p_(p) { ++p_->nesting_; }
    ~Nesting() { --p_->nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    bool TooDeep() const { return p_->nesting_ > kMaxDepth; }

   private:
    Parser* p_;
  };

  const Token& Peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  int Fail(size_t offset, std::string message) {
    if (!error_) error_ = CompileError{offset, std::move(message)};
    return -1;
  }
  int TooDeep() { return Fail(Peek().offset, Cat("expression nests too deeply (more than ", kMaxDepth, " levels)")); }

  Node& N(int i) { return program_->nodes[static_cast<size_t>(i)]; }
  Type T(int i) { return N(i).type; }
  std::string_view Text(int i) { return text_.substr(N(i).begin, N(i).end - N(i).begin); }

  int Add(Node n) {
    int below = 0;
    if (n.lhs >= 0) below = std::max(below, N(n.lhs).depth);
    if (n.rhs >= 0) below = std::max(below, N(n.rhs).depth);
    if (!n.list.empty()) below = std::max(below, 1);
    n.depth = below + 1;
    if (n.depth > kMaxDepth) {
      return Fail(n.begin, Cat("expression nests too deeply (more than ", kMaxDepth, " levels)"));
    }
    program_->nodes.push_back(std::move(n));
    return static_cast<int>(program_->nodes.size() - 1);
  }

  // A node over `lhs` (and `rhs`), spanning their text.
  Node Over(Op op, Type type, int lhs, int rhs) {
    Node n;
    n.op = op;
    n.type = type;
    n.lhs = lhs;
    n.rhs = rhs;
    n.begin = N(lhs).begin;
    n.end = N(rhs >= 0 ? rhs : lhs).end;
    return n;
  }

  int Mismatch(size_t offset, int a, int b, std::string_view why = {}) {
    std::string message =
        Cat("type mismatch: ", Text(a), " is ", TypeName(T(a)), ", ", Text(b), " is ", TypeName(T(b)));
    if (!why.empty()) {
      Append(&message, "; ", why);
    } else {
      // 60 where 60s was meant is the commonest slip.
      for (auto [dur, num] : {std::pair{a, b}, std::pair{b, a}}) {
        if (T(dur) == Type::kDuration && N(num).op == Op::kConst && IsNumeric(T(num))) {
          Append(&message, "; write a duration with its unit, e.g. ", Text(num), "s");
          break;
        }
      }
    }
    return Fail(offset, std::move(message));
  }

  int NeedBool(std::string_view word, int operand) {
    if (T(operand) == Type::kBool) return operand;
    return Fail(N(operand).begin,
                Cat("type mismatch: \"", word, "\" takes bool, ", Text(operand), " is ", TypeName(T(operand))));
  }

  // `field` compared with `literal`: an enum field has a closed set of labels.
  bool CheckEnum(int field, int literal) {
    if (N(field).op != Op::kField || N(literal).op != Op::kConst || T(literal) != Type::kString) return true;
    const FieldPath& path = program_->fields[static_cast<size_t>(N(field).field)];
    if (!path.is_enum() || path.HasLabel(N(literal).s)) return true;
    Fail(N(literal).begin, Cat(path.name(), " has no value ", Text(literal), "; it is one of: ", path.LabelList()));
    return false;
  }

  int ParseOr() {
    Nesting nesting(this);
    if (nesting.TooDeep()) return TooDeep();
    int l = ParseAnd();
    while (l >= 0 && Peek().kind == TokenKind::kOr) {
      Next();
      const int r = ParseAnd();
      if (r < 0 || NeedBool("or", l) < 0 || NeedBool("or", r) < 0) return -1;
      l = Add(Over(Op::kOr, Type::kBool, l, r));
    }
    return l;
  }

  int ParseAnd() {
    int l = ParseNot();
    while (l >= 0 && Peek().kind == TokenKind::kAnd) {
      Next();
      const int r = ParseNot();
      if (r < 0 || NeedBool("and", l) < 0 || NeedBool("and", r) < 0) return -1;
      l = Add(Over(Op::kAnd, Type::kBool, l, r));
    }
    return l;
  }

  int ParseNot() {
    if (Peek().kind != TokenKind::kNot) return ParseComparison();
    const size_t begin = Next().offset;
    Nesting nesting(this);
    if (nesting.TooDeep()) return TooDeep();
    const int operand = ParseNot();
    if (operand < 0 || NeedBool("not", operand) < 0) return -1;
    Node n = Over(Op::kNot, Type::kBool, operand, -1);
    n.begin = begin;
    return Add(std::move(n));
  }

  bool AtComparison() const {
    const TokenKind k = Peek().kind;
    return IsComparison(k) || k == TokenKind::kIn || (k == TokenKind::kNot && Peek(1).kind == TokenKind::kIn);
  }

  int ParseComparison() {
    const int l = ParseAdditive();
    if (l < 0 || !AtComparison()) return l;
    int n = -1;
    const Token& op = Next();
    if (op.kind == TokenKind::kIn) {
      n = ParseIn(l, false);
    } else if (op.kind == TokenKind::kNot) {
      Next();  // in
      n = ParseIn(l, true);
    } else {
      const int r = ParseAdditive();
      if (r < 0) return -1;
      n = Compare(op, l, r);
    }
    if (n >= 0 && AtComparison()) return Fail(Peek().offset, "comparisons do not chain; join them with \"and\"");
    return n;
  }

  int Compare(const Token& op, int l, int r) {
    const Type a = T(l);
    const Type b = T(r);
    Type operand;
    if (IsNumeric(a) && IsNumeric(b)) {
      operand = a == Type::kDouble || b == Type::kDouble ? Type::kDouble : Type::kInt;
    } else if (a == b) {
      operand = a == Type::kDuration || a == Type::kTimestamp ? Type::kInt : a;
    } else {
      return Mismatch(N(l).begin, l, r);
    }
    if (operand == Type::kBool && op.kind != TokenKind::kEq && op.kind != TokenKind::kNe) {
      return Fail(N(l).begin, Cat("type mismatch: \"", op.text,
                                  "\" orders numbers, strings, durations and timestamps; ", Text(l), " is bool"));
    }
    if (!CheckEnum(l, r) || !CheckEnum(r, l)) return -1;
    Op code = Op::kEq;
    switch (op.kind) {
      case TokenKind::kNe:
        code = Op::kNe;
        break;
      case TokenKind::kLt:
        code = Op::kLt;
        break;
      case TokenKind::kLe:
        code = Op::kLe;
        break;
      case TokenKind::kGt:
        code = Op::kGt;
        break;
      case TokenKind::kGe:
        code = Op::kGe;
        break;
      default:
        break;
    }
    Node n = Over(code, Type::kBool, l, r);
    n.operand = operand;
    return Add(std::move(n));
  }

  // After `in` or `not in`: a list of literals.
  int ParseIn(int l, bool negate) {
    if (Peek().kind != TokenKind::kLBracket) {
      return Fail(Peek().offset, Cat("expected a list [...] after \"in\", found ", DescribeToken(Peek())));
    }
    Next();
    std::vector<int> elements;
    if (Peek().kind != TokenKind::kRBracket) {
      while (true) {
        const int e = ParseListElement();
        if (e < 0) return -1;
        elements.push_back(e);
        if (Peek().kind != TokenKind::kComma) break;
        Next();
      }
    }
    if (Peek().kind != TokenKind::kRBracket) {
      return Fail(Peek().offset, Cat("expected \",\" or \"]\" in the list, found ", DescribeToken(Peek())));
    }
    const size_t end = Next().offset + 1;

    const Type a = T(l);
    bool any_double = a == Type::kDouble;
    for (int e : elements) {
      if (!(IsNumeric(a) && IsNumeric(T(e))) && a != T(e)) return Mismatch(N(e).begin, l, e);
      if (T(e) == Type::kDouble) any_double = true;
      if (!CheckEnum(l, e)) return -1;
    }
    Node n;
    n.op = Op::kIn;
    n.type = Type::kBool;
    if (IsNumeric(a)) {
      n.operand = any_double ? Type::kDouble : Type::kInt;
    } else {
      n.operand = a == Type::kDuration || a == Type::kTimestamp ? Type::kInt : a;
    }
    n.lhs = l;
    n.list = std::move(elements);
    n.begin = N(l).begin;
    n.end = end;
    const int in = Add(std::move(n));
    if (in < 0 || !negate) return in;
    return Add(Over(Op::kNot, Type::kBool, in, -1));
  }

  int ParseListElement() {
    const size_t begin = Peek().offset;
    const bool negative = Peek().kind == TokenKind::kMinus;
    if (negative) Next();
    const TokenKind k = Peek().kind;
    const bool number = k == TokenKind::kInt || k == TokenKind::kDouble || k == TokenKind::kDuration;
    const bool other = k == TokenKind::kString || k == TokenKind::kTrue || k == TokenKind::kFalse;
    if (!(number || (other && !negative))) {
      return Fail(begin, "list elements must be literals: strings, numbers, durations, true or false");
    }
    const int c = AddConst(Next());
    if (c >= 0 && negative) Negate(c, begin);
    return c;
  }

  int ParseAdditive() {
    int l = ParseMultiplicative();
    while (l >= 0 && (Peek().kind == TokenKind::kPlus || Peek().kind == TokenKind::kMinus)) {
      const TokenKind op = Next().kind;
      const int r = ParseMultiplicative();
      if (r < 0) return -1;
      l = Arithmetic(op, l, r);
    }
    return l;
  }

  int ParseMultiplicative() {
    int l = ParseUnary();
    while (l >= 0 && (Peek().kind == TokenKind::kStar || Peek().kind == TokenKind::kSlash)) {
      const TokenKind op = Next().kind;
      const int r = ParseUnary();
      if (r < 0) return -1;
      l = Arithmetic(op, l, r);
    }
    return l;
  }

  int Arithmetic(TokenKind op, int l, int r) {
    const Type a = T(l);
    const Type b = T(r);
    const bool numbers = IsNumeric(a) && IsNumeric(b);
    const Type number = a == Type::kDouble || b == Type::kDouble ? Type::kDouble : Type::kInt;
    const bool durations = a == Type::kDuration && b == Type::kDuration;
    // `operand` kInt: integer math on Value::i (ints, durations, timestamps);
    // kDouble: math in double, converted back for a duration result.
    std::optional<std::pair<Type, Type>> typed;  // result, operand
    Op code = Op::kAdd;
    std::string_view rule;
    switch (op) {
      case TokenKind::kPlus:
        rule = "+ adds numbers, durations, or a duration to a timestamp";
        if (numbers) typed = {number, number};
        if (durations) typed = {Type::kDuration, Type::kInt};
        if ((a == Type::kTimestamp && b == Type::kDuration) || (a == Type::kDuration && b == Type::kTimestamp)) {
          typed = {Type::kTimestamp, Type::kInt};
        }
        break;
      case TokenKind::kMinus:
        code = Op::kSub;
        rule = "- subtracts numbers, durations, a duration from a timestamp, or two timestamps";
        if (numbers) typed = {number, number};
        if (durations) typed = {Type::kDuration, Type::kInt};
        if (a == Type::kTimestamp && b == Type::kTimestamp) typed = {Type::kDuration, Type::kInt};
        if (a == Type::kTimestamp && b == Type::kDuration) typed = {Type::kTimestamp, Type::kInt};
        break;
      case TokenKind::kStar:
        code = Op::kMul;
        rule = "* multiplies numbers, or a duration by a number";
        if (numbers) typed = {number, number};
        if ((a == Type::kDuration && IsNumeric(b)) || (IsNumeric(a) && b == Type::kDuration)) {
          typed = {Type::kDuration, a == Type::kDouble || b == Type::kDouble ? Type::kDouble : Type::kInt};
        }
        break;
      case TokenKind::kSlash:
        code = Op::kDiv;
        rule = "/ divides numbers, or a duration by a number";
        if (numbers) typed = {Type::kDouble, Type::kDouble};  // 7 / 2 is 3.5, as a rule author expects
        if (a == Type::kDuration && IsNumeric(b)) typed = {Type::kDuration, b};
        break;
      default:
        break;
    }
    if (!typed) return Mismatch(N(l).begin, l, r, rule);
    Node n = Over(code, typed->first, l, r);
    n.operand = typed->second;
    return Add(std::move(n));
  }

  int ParseUnary() {
    if (Peek().kind != TokenKind::kMinus) return ParsePrimary();
    const size_t begin = Next().offset;
    Nesting nesting(this);
    if (nesting.TooDeep()) return TooDeep();
    const int operand = ParseUnary();
    if (operand < 0) return -1;
    const Type t = T(operand);
    if (t != Type::kInt && t != Type::kDouble && t != Type::kDuration) {
      return Fail(begin,
                  Cat("type mismatch: \"-\" negates numbers and durations, ", Text(operand), " is ", TypeName(t)));
    }
    if (N(operand).op == Op::kConst) {
      Negate(operand, begin);
      return operand;
    }
    Node n = Over(Op::kNeg, t, operand, -1);
    n.begin = begin;
    return Add(std::move(n));
  }

  void Negate(int constant, size_t begin) {
    Node& c = N(constant);
    c.d = -c.d;
    c.i = c.i == INT64_MIN ? INT64_MAX : -c.i;
    c.begin = begin;
  }

  int ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt:
      case TokenKind::kDouble:
      case TokenKind::kDuration:
      case TokenKind::kString:
      case TokenKind::kTrue:
      case TokenKind::kFalse:
        return AddConst(Next());
      case TokenKind::kPath:
        if (Peek(1).kind == TokenKind::kLParen) return ParseCall();
        return AddField(Next());
      case TokenKind::kLParen: {
        const size_t begin = Next().offset;
        const int inner = ParseOr();
        if (inner < 0) return -1;
        if (Peek().kind != TokenKind::kRParen) {
          return Fail(Peek().offset, Cat("expected \")\", found ", DescribeToken(Peek())));
        }
        // The parentheses belong to the operand, for messages that quote it.
        N(inner).begin = begin;
        N(inner).end = Next().offset + 1;
        return inner;
      }
      case TokenKind::kLBracket:
        return Fail(t.offset, "a list [...] can only follow \"in\"");
      default:
        return Fail(t.offset, Cat("expected a value, found ", DescribeToken(t)));
    }
  }

  int AddConst(const Token& t) {
    Node n;
    n.op = Op::kConst;
    n.begin = t.offset;
    n.end = t.offset + t.text.size();
    switch (t.kind) {
      case TokenKind::kInt:
        n.type = Type::kInt;
        n.i = t.i;
        break;
      case TokenKind::kDouble:
        n.type = Type::kDouble;
        n.d = t.d;
        break;
      case TokenKind::kDuration:
        n.type = Type::kDuration;
        n.i = t.i;
        break;
      case TokenKind::kString:
        n.type = Type::kString;
        n.s = t.str;
        break;
      default:
        n.type = Type::kBool;
        n.b = t.kind == TokenKind::kTrue;
        break;
    }
    return Add(std::move(n));
  }

  int AddField(const Token& t) {
    absl::StatusOr<FieldPath> path = FieldPath::Resolve(t.text);
    if (!path.ok()) return Fail(t.offset, std::string(Message(path.status())));
    Node n;
    n.op = Op::kField;
    n.type = path->type();
    n.begin = t.offset;
    n.end = t.offset + t.text.size();
    n.field = static_cast<int>(program_->fields.size());
    if (n.type == Type::kString) n.scratch = program_->scratch_slots++;
    program_->fields.push_back(*std::move(path));
    return Add(std::move(n));
  }

  int ParseCall() {
    const Token& name = Next();
    Next();  // (
    const Function* f = nullptr;
    for (const Function& candidate : kFunctions) {
      if (candidate.name == name.text) f = &candidate;
    }
    if (f == nullptr) {
      std::string known;
      for (const Function& candidate : kFunctions) Append(&known, known.empty() ? "" : ", ", candidate.name);
      return Fail(name.offset, Cat("unknown function \"", name.text, "\"; functions are: ", known));
    }
    std::vector<int> args;
    if (Peek().kind != TokenKind::kRParen) {
      while (true) {
        const int a = ParseOr();
        if (a < 0) return -1;
        args.push_back(a);
        if (Peek().kind != TokenKind::kComma) break;
        Next();
      }
    }
    if (Peek().kind != TokenKind::kRParen) {
      return Fail(Peek().offset,
                  Cat("expected \",\" or \")\" in the arguments of ", f->name, ", found ", DescribeToken(Peek())));
    }
    const size_t end = Next().offset + 1;
    if (args.size() != f->arity) {
      return Fail(name.offset,
                  Cat(f->name, " takes ", f->arity, f->arity == 1 ? " argument" : " arguments", ", got ", args.size()));
    }
    for (int a : args) {
      if (T(a) != Type::kString) {
        return Fail(N(a).begin, Cat("type mismatch: ", f->name, " takes ", f->arity == 1 ? "a string" : "strings", ", ",
                                    Text(a), " is ", TypeName(T(a))));
      }
    }
    Node n = Over(f->op, f->result, args[0], args.size() > 1 ? args[1] : -1);
    n.begin = name.offset;
    n.end = end;
    if (f->op == Op::kLower) n.scratch = program_->scratch_slots++;
    return Add(std::move(n));
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  Program* program_;
  std::optional<CompileError> error_;
  int nesting_ = 0;
};

}  // namespace

std::variant<std::shared_ptr<const Program>, CompileError> CompileProgram(std::string_view text) {
  auto program = std::make_shared<Program>();
  program->text = std::string(text);
  auto tokens = Tokenize(program->text);
  if (auto* error = std::get_if<CompileError>(&tokens)) return std::move(*error);
  Parser parser(program->text, std::get<std::vector<Token>>(std::move(tokens)), program.get());
  if (std::optional<CompileError> error = parser.Run()) return *std::move(error);
  for (const FieldPath& f : program->fields) {
    if (f.body() != 0) program->bodies.push_back(f.body());
  }
  std::sort(program->bodies.begin(), program->bodies.end());
  program->bodies.erase(std::unique(program->bodies.begin(), program->bodies.end()), program->bodies.end());
  return std::shared_ptr<const Program>(std::move(program));
}

}  // namespace cxpulse::expr::internal

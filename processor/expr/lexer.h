// Lexer: splits the text of a `where` expression into tokens, each carrying
// its offset so every later error can point at the character it is about.
// Runs while rules compile, never while events are evaluated. Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "expr/compile_error.h"

namespace cxpulse::expr {

enum class TokenKind {
  kEnd,       // after the last token
  kPath,      // a name or dotted field path: queue, survey.score, lower
  kInt,       // 42
  kDouble,    // 0.6
  kDuration,  // 90s, 1h30m (ParseDuration syntax)
  kString,    // "..." or '...'
  kTrue,
  kFalse,
  kAnd,
  kOr,
  kNot,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t offset = 0;      // of the first character in the source
  std::string_view text;  // as written (a string keeps its quotes); views the source
  int64_t i = 0;          // kInt; kDuration in Micros
  double d = 0;           // kDouble
  std::string str;        // kString, with escapes resolved
};

// The tokens of `text`, ending with one kEnd token, or the first lexical error.
// The tokens view `text`, which must outlive them.
std::variant<std::vector<Token>, CompileError> Tokenize(std::string_view text);

// How a token is named in a message: "and", "\"gold\"", "end of expression".
std::string DescribeToken(const Token& token);

}  // namespace cxpulse::expr

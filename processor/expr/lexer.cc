#include "expr/lexer.h"

#include <charconv>
#include <system_error>
#include <utility>

#include "absl/status/statusor.h"
#include "common/strings.h"
#include "common/time.h"

namespace cxpulse::expr {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsNameStart(char c) { return IsAlpha(c) || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

struct Keyword {
  std::string_view text;
  TokenKind kind;
};
constexpr Keyword kKeywords[] = {
    {"and", TokenKind::kAnd}, {"or", TokenKind::kOr},     {"not", TokenKind::kNot},
    {"in", TokenKind::kIn},   {"true", TokenKind::kTrue}, {"false", TokenKind::kFalse},
};

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::variant<std::vector<Token>, CompileError> Run() {
    std::vector<Token> tokens;
    while (true) {
      while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
      Token token;
      token.offset = pos_;
      if (pos_ == text_.size()) {
        token.kind = TokenKind::kEnd;
        tokens.push_back(std::move(token));
        return tokens;
      }
      if (!Lex(&token)) return std::move(error_);
      token.text = text_.substr(token.offset, pos_ - token.offset);
      tokens.push_back(std::move(token));
    }
  }

 private:
  bool Fail(size_t offset, std::string message) {
    error_ = CompileError{offset, std::move(message)};
    return false;
  }

  // Reads one token starting at pos_ (not whitespace, not the end).
  bool Lex(Token* token) {
    const char c = text_[pos_];
    if (IsNameStart(c)) return LexPath(token);
    if (IsDigit(c)) return LexNumber(token);
    if (c == '"' || c == '\'') return LexString(token);
    const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    auto single = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 1;
      return true;
    };
    auto twin = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 2;
      return true;
    };
    switch (c) {
      case '(':
        return single(TokenKind::kLParen);
      case ')':
        return single(TokenKind::kRParen);
      case '[':
        return single(TokenKind::kLBracket);
      case ']':
        return single(TokenKind::kRBracket);
      case ',':
        return single(TokenKind::kComma);
      case '+':
        return single(TokenKind::kPlus);
      case '-':
        return single(TokenKind::kMinus);
      case '*':
        return single(TokenKind::kStar);
      case '/':
        return single(TokenKind::kSlash);
      case '=':
        if (next == '=') return twin(TokenKind::kEq);
        return Fail(pos_, "use == to compare, not =");
      case '!':
        if (next == '=') return twin(TokenKind::kNe);
        return Fail(pos_, "use \"not\" instead of \"!\"");
      case '<':
        if (next == '=') return twin(TokenKind::kLe);
        return single(TokenKind::kLt);
      case '>':
        if (next == '=') return twin(TokenKind::kGe);
        return single(TokenKind::kGt);
      case '&':
        if (next == '&') return Fail(pos_, "use \"and\" instead of \"&&\"");
        break;
      case '|':
        if (next == '|') return Fail(pos_, "use \"or\" instead of \"||\"");
        break;
      default:
        break;
    }
    return Fail(pos_, Cat("unexpected character \"", text_.substr(pos_, 1), "\""));
  }

  // name ('.' name)*: a keyword, a function name or a field path.
  bool LexPath(Token* token) {
    const size_t start = pos_;
    while (true) {
      while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
      if (pos_ >= text_.size() || text_[pos_] != '.') break;
      if (pos_ + 1 >= text_.size() || !IsNameStart(text_[pos_ + 1])) {
        return Fail(pos_, Cat("expected a field name after \"", text_.substr(start, pos_ + 1 - start), "\""));
      }
      ++pos_;
    }
    const std::string_view word = text_.substr(start, pos_ - start);
    token->kind = TokenKind::kPath;
    for (const Keyword& k : kKeywords) {
      if (word == k.text) token->kind = k.kind;
    }
    return true;
  }

  // 42, 0.6, or a duration: 90s, 500ms, 1h30m.
  bool LexNumber(Token* token) {
    const size_t start = pos_;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (pos_ >= text_.size() || !IsDigit(text_[pos_])) {
        return Fail(start, Cat("expected a digit after \"", text_.substr(start, pos_ - start), "\""));
      }
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
      if (pos_ < text_.size() && IsNameChar(text_[pos_])) {
        while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
        return Fail(start, Cat("bad number \"", text_.substr(start, pos_ - start),
                               "\": a duration takes whole numbers of each unit, e.g. 1h30m"));
      }
      const std::string_view digits = text_.substr(start, pos_ - start);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), token->d);
      if (ec != std::errc() || end != digits.data() + digits.size()) {
        return Fail(start, Cat("number ", digits, " is out of range"));
      }
      token->kind = TokenKind::kDouble;
      return true;
    }
    if (pos_ < text_.size() && IsNameChar(text_[pos_])) {
      while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
      const std::string_view written = text_.substr(start, pos_ - start);
      absl::StatusOr<Micros> micros = ParseDuration(written);
      if (!micros.ok()) return Fail(start, std::string(Message(micros.status())));
      token->kind = TokenKind::kDuration;
      token->i = *micros;
      return true;
    }
    const std::string_view digits = text_.substr(start, pos_ - start);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), token->i);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      return Fail(start, Cat("integer ", digits, " is out of range"));
    }
    token->kind = TokenKind::kInt;
    return true;
  }

  // "..." or '...', with \" \' \\ \n \t escapes.
  bool LexString(Token* token) {
    const size_t start = pos_;
    const char quote = text_[pos_++];
    while (pos_ < text_.size() && text_[pos_] != quote) {
      char c = text_[pos_];
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) break;
        switch (text_[pos_ + 1]) {
          case '"':
          case '\'':
          case '\\':
            c = text_[pos_ + 1];
            break;
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          default:
            return Fail(pos_, Cat("unknown escape \"", text_.substr(pos_, 2),
                                  "\" in a string; use \\\", \\', \\\\, \\n or \\t"));
        }
        ++pos_;
      }
      token->str += c;
      ++pos_;
    }
    if (pos_ >= text_.size()) return Fail(start, Cat("unterminated string: no closing ", quote));
    ++pos_;
    token->kind = TokenKind::kString;
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  CompileError error_;
};

}  // namespace

std::variant<std::vector<Token>, CompileError> Tokenize(std::string_view text) { return Lexer(text).Run(); }

std::string DescribeToken(const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of expression";
  if (token.kind == TokenKind::kString) return std::string(token.text);
  return Cat("\"", token.text, "\"");
}

}  // namespace cxpulse::expr

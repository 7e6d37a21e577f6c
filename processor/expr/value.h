// Value and Type: the static type of a `where` expression and the result of
// evaluating one. A string Value is a view into the event or into the
// Expression that produced it, valid until either changes or the Expression is
// evaluated again, so read it on the thread that evaluated it.
#pragma once

#include <cstdint>
#include <string_view>

namespace cxpulse::expr {

enum class Type { kBool, kInt, kDouble, kString, kDuration, kTimestamp };

// "bool", "int", "double", "string", "duration", "timestamp": the words used
// in error messages.
constexpr std::string_view TypeName(Type t) {
  switch (t) {
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kDouble:
      return "double";
    case Type::kString:
      return "string";
    case Type::kDuration:
      return "duration";
    case Type::kTimestamp:
      return "timestamp";
  }
  return "?";
}

struct Value {
  Type type = Type::kBool;
  bool b = false;      // kBool
  int64_t i = 0;       // kInt; kDuration and kTimestamp as Micros
  double d = 0;        // kDouble
  std::string_view s;  // kString

  // int, double, duration and timestamp (Micros) as a double; bool as 0 or 1;
  // a string as 0.
  constexpr double AsNumber() const {
    switch (type) {
      case Type::kDouble:
        return d;
      case Type::kInt:
      case Type::kDuration:
      case Type::kTimestamp:
        return static_cast<double>(i);
      case Type::kBool:
        return b ? 1 : 0;
      case Type::kString:
        return 0;
    }
    return 0;
  }
};

}  // namespace cxpulse::expr

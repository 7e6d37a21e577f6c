// SummaryTemplate: a rule's `summary` ("{customer_id} contacted us {count}
// times about {reason} within {window}"), split once, when the rules are
// loaded, into literal text and placeholders, so that a finding renders it
// without searching the text again. The rule loader (rule_set.cc) has
// refused any placeholder that is neither a key field nor a built-in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace cxpulse {

class SummaryTemplate {
 public:
  enum class Part : uint8_t {
    kText,  // literal text
    kKey,   // a key field's value
    kRule, kCount, kValue, kRatio, kBaseline, kWindow, kDueAt, kSince, kSeverity,
    kUnknown,  // renders as nothing (the loader refuses these)
  };
  struct Piece {
    Part part;
    std::string text;  // kText
    size_t key = 0;    // kKey: index into the rule's key fields
  };

  SummaryTemplate() = default;
  // `text` with placeholders {name}; a '{' without a closing '}' and what
  // follows it are literal text.
  SummaryTemplate(std::string_view text, const std::vector<std::string>& key_names);

  // What a finding fills the placeholders with.
  struct Values {
    const std::vector<std::string_view>* keys = nullptr;  // by key field
    std::string_view rule;
    int64_t count = 0;
    bool count_is_lower_bound = false;
    double value = 0;
    double ratio = 0;
    double baseline = 0;
    std::string_view window;  // the rule's own window, formatted; empty: the span below
    Micros window_start = 0;
    Micros window_end = 0;
    std::string_view severity;
  };
  // Replaces *out; allocates only when *out must grow.
  void Render(const Values& v, std::string* out) const;

  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

}  // namespace cxpulse

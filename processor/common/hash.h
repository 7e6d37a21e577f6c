// Stable hashes for identifiers that must be the same in every process and on
// every run (finding ids, rule versions): FNV-1a, not absl::Hash, which is
// seeded per process. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace cxpulse {

class StableHash {
 public:
  explicit StableHash(uint64_t seed = 0xcbf29ce484222325ULL) : h_(seed) {}
  StableHash& Add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      h_ ^= c;
      h_ *= 0x100000001b3ULL;
    }
    // A separator so ("ab","c") and ("a","bc") differ.
    h_ ^= 0xff;
    h_ *= 0x100000001b3ULL;
    return *this;
  }
  StableHash& Add(int64_t v) { return Add(std::string_view(reinterpret_cast<const char*>(&v), sizeof v)); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_;
};

inline std::string Hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

}  // namespace cxpulse

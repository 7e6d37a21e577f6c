// The bytes of a changelog record's value (engine/state_log.h): fixed-width
// little-endian numbers, varint counts and length-prefixed strings. The
// reader bounds-checks every read, since a value comes from outside (a topic
// any producer could write): a read past the end or a count beyond what the
// caller allows fails, and after one failure every read fails, so a decoder
// checks once at the end. Plain values; one thread each.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cxpulse {

class RecordWriter {
 public:
  // Appends to `out`, which keeps its buffer from one record to the next.
  explicit RecordWriter(std::string* out) : out_(out) {}

  void Byte(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void Fixed(uint64_t v) {
    char bytes[8];
    for (int i = 0; i < 8; ++i, v >>= 8) bytes[i] = static_cast<char>(v & 0xff);
    out_->append(bytes, sizeof bytes);
  }
  void Signed(int64_t v) { Fixed(static_cast<uint64_t>(v)); }
  void Double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    Fixed(bits);
  }
  void Varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
    out_->push_back(static_cast<char>(v));
  }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_->append(s.data(), s.size());
  }

 private:
  std::string* out_;
};

class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {}

  // Every read so far succeeded and nothing is left over.
  bool Done() const { return ok_ && pos_ == in_.size(); }
  bool ok() const { return ok_; }

  uint8_t Byte() {
    if (!Need(1)) return 0;
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t Fixed() {
    if (!Need(8)) return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(in_[pos_ + static_cast<size_t>(i)]);
    pos_ += 8;
    return v;
  }
  int64_t Signed() { return static_cast<int64_t>(Fixed()); }
  // A time or a count the engine does arithmetic on: within +-2^62, so that
  // differences and sums of two stay in range. Outside: a failed read.
  int64_t Bounded() {
    const int64_t v = Signed();
    return Check(v >= -kBound && v <= kBound) ? v : 0;
  }
  // A finite number within the same bound.
  double Double() {
    const uint64_t bits = Fixed();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return Check(std::isfinite(v) && std::fabs(v) <= static_cast<double>(kBound)) ? v : 0;
  }
  // At most `most`: a count that sizes what follows.
  uint64_t Varint(uint64_t most) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Need(1)) return 0;
      const auto b = static_cast<unsigned char>(in_[pos_++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return Check(v <= most) ? v : 0;
    }
    ok_ = false;
    return 0;
  }
  // A view into the input, valid while it is.
  std::string_view Bytes() {
    const uint64_t n = Varint(in_.size());
    if (!Need(n)) return {};
    const std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  // Fails the read when `valid` is false; returns it.
  bool Check(bool valid) {
    ok_ = ok_ && valid;
    return ok_;
  }

  static constexpr int64_t kBound = int64_t{1} << 62;

 private:
  bool Need(uint64_t n) { return Check(ok_ && in_.size() - pos_ >= n); }

  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace cxpulse

// Inline text for per-key state (engine/engine.cc, "Storage for per-key
// state"): an id or a key without a heap allocation while it is short.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace cxpulse {

// An id or a key in kSize bytes: up to kSize - 1 bytes in place, longer text
// on the heap. std::string takes 32 bytes and keeps only 15 in place.
template <size_t kSize>
class Text {
  static_assert(kSize >= 16 && kSize <= 128);

 public:
  Text() { SetInlineSize(0); }
  Text(const Text&) = delete;
  Text& operator=(const Text&) = delete;
  Text(Text&& o) noexcept {
    std::memcpy(bytes_, o.bytes_, kSize);
    o.SetInlineSize(0);
  }
  Text& operator=(Text&& o) noexcept {
    if (this != &o) {
      Free();
      std::memcpy(bytes_, o.bytes_, kSize);
      o.SetInlineSize(0);
    }
    return *this;
  }
  ~Text() { Free(); }

  std::string_view view() const {
    if (OnHeap()) return {HeapData(), HeapSize()};
    return {reinterpret_cast<const char*>(bytes_), kSize - 1 - bytes_[kSize - 1]};
  }

  // Once on the heap, text stays there while it fits, so a ring slot that
  // held one long id takes the next without allocating.
  void Assign(std::string_view s) {
    if (s.empty()) s = std::string_view("", 0);  // never a null pointer to memmove (a restored empty id)
    if (OnHeap()) {
      if (s.size() <= HeapCapacity()) {
        std::memmove(HeapData(), s.data(), s.size());
        SetHeap(HeapData(), s.size(), HeapCapacity());
        return;
      }
    } else if (s.size() < kSize) {
      std::memmove(bytes_, s.data(), s.size());
      SetInlineSize(s.size());
      return;
    }
    char* data = new char[s.size()];
    std::memcpy(data, s.data(), s.size());
    Free();
    SetHeap(data, s.size(), s.size());
  }

 private:
  // In place: the text, and in the last byte the room left (0..kSize-1).
  // On the heap: pointer, size (4 bytes), capacity (3 bytes), then kHeap.
  static constexpr unsigned char kHeap = 0xff;
  static constexpr size_t kMaxCapacity = 0xffffff;  // a longer buffer records less: safe

  bool OnHeap() const { return bytes_[kSize - 1] == kHeap; }
  void SetInlineSize(size_t n) { bytes_[kSize - 1] = static_cast<unsigned char>(kSize - 1 - n); }
  char* HeapData() const {
    char* p;
    std::memcpy(&p, bytes_, sizeof p);
    return p;
  }
  size_t HeapSize() const {
    uint32_t n;
    std::memcpy(&n, bytes_ + 8, sizeof n);
    return n;
  }
  size_t HeapCapacity() const { return bytes_[12] | size_t{bytes_[13]} << 8 | size_t{bytes_[14]} << 16; }
  void SetHeap(char* data, size_t size, size_t capacity) {
    const auto n = static_cast<uint32_t>(size);
    capacity = std::min(capacity, kMaxCapacity);
    std::memcpy(bytes_, &data, sizeof data);
    std::memcpy(bytes_ + 8, &n, sizeof n);
    bytes_[12] = static_cast<unsigned char>(capacity);
    bytes_[13] = static_cast<unsigned char>(capacity >> 8);
    bytes_[14] = static_cast<unsigned char>(capacity >> 16);
    bytes_[kSize - 1] = kHeap;
  }
  void Free() {
    if (OnHeap()) delete[] HeapData();
  }

  alignas(8) unsigned char bytes_[kSize] = {};
};

}  // namespace cxpulse

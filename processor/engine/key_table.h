// Keys to per-key state, with the changes since the last checkpoint
// (engine/engine.cc, "Storage for per-key state").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "engine/slab.h"
#include "engine/text.h"

namespace cxpulse {

// What changed in one KeyTable since the last checkpoint
// (EngineOptions::track_changes). A record touched is listed once, a bit per
// record saying it is listed: appending a number on its first touch in the
// interval is all an event pays. An erased key is kept as text, since its
// record's number may go to another key before the checkpoint. All of it
// keeps its capacity from one interval to the next.
struct Changes {
  std::vector<uint64_t> listed;   // a bit per record, by Slab::Ordinal
  std::vector<uint32_t> touched;  // record numbers, in order of first touch
  std::string erased;             // erased keys, back to back
  std::vector<uint32_t> erased_ends;
  std::vector<std::string_view> gone;  // a checkpoint's erased keys, sorted

  void Touch(uint32_t record, size_t ordinal) {
    if (ordinal / 64 >= listed.size()) listed.resize(ordinal / 64 + 1);
    uint64_t& word = listed[ordinal / 64];
    const uint64_t bit = uint64_t{1} << (ordinal % 64);
    if (word & bit) return;
    word |= bit;
    touched.push_back(record);
  }
  void Erased(std::string_view key) {
    erased.append(key.data(), key.size());
    erased_ends.push_back(static_cast<uint32_t>(erased.size()));
  }
  // The erased keys, each once.
  const std::vector<std::string_view>& Gone() {
    gone.clear();
    for (size_t i = 0, start = 0; i < erased_ends.size(); start = erased_ends[i++]) {
      gone.emplace_back(erased.data() + start, erased_ends[i] - start);
    }
    std::sort(gone.begin(), gone.end());
    gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
    return gone;
  }
  void Clear() {
    touched.clear();
    erased.clear();
    erased_ends.clear();
  }
};

// Keys to per-key state. A key's record (its text and state) lives in a slab;
// the hash index holds only record numbers, 4 bytes a slot, so the open
// addressing table's empty slots (1/8 to 9/16 of them, depending on where
// the key count falls between two sizes) cost little. Not movable: the
// index's functors point at the slab.
template <typename V>
class KeyTable {
  struct Record {
    Text<24> key;
    V value;
  };

 public:
  using Value = V;
  static constexpr uint32_t kNone = Slab<Record>::kNone;

  KeyTable() : index_(0, Hash{&records_}, Eq{&records_}) {}
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  size_t size() const { return index_.size(); }
  uint32_t Find(std::string_view key) const {
    auto it = index_.find(key);
    return it == index_.end() ? kNone : *it;
  }
  // A record for a key not in the table, its state value-initialized.
  uint32_t Insert(std::string_view key) {
    const uint32_t i = records_.Take();
    records_.Block(i)->key.Assign(key);
    index_.insert(i);
    return i;
  }
  V& At(uint32_t i) { return records_.Block(i)->value; }
  std::string_view KeyAt(uint32_t i) const { return records_.Block(i)->key.view(); }

  void Erase(uint32_t i) {
    if (changes_) changes_->Erased(KeyAt(i));
    index_.erase(KeyAt(i));
    Release(i);
  }
  // Erases the records `drop(state)` says to; `drop` releases what the state
  // holds elsewhere before it says yes.
  template <typename Pred>
  size_t EraseIf(Pred drop) {
    size_t n = 0;
    for (auto it = index_.begin(); it != index_.end();) {
      const uint32_t i = *it;
      if (drop(At(i))) {
        if (changes_) changes_->Erased(KeyAt(i));
        index_.erase(it++);
        Release(i);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  // Checkpoints: from now on, which records change.
  void TrackChanges() { changes_ = std::make_unique<Changes>(); }
  // Record i's state may change (an event found or created it).
  void Touch(uint32_t i) {
    if (changes_) changes_->Touch(i, Slab<Record>::Ordinal(i));
  }
  // What changed since the last call, when tracked: `gone(key)` for each key
  // erased that holds no state now, then `changed(record)` for each record
  // touched that still holds its key. A key erased and created again is
  // only `changed`: its new value supersedes the old one, whose tombstone
  // would add nothing.
  template <typename Gone, typename Changed>
  void TakeChanges(Gone gone, Changed changed) {
    if (!changes_) return;
    for (std::string_view key : changes_->Gone()) {
      if (Find(key) == kNone) gone(key);
    }
    for (const uint32_t i : changes_->touched) {
      const size_t ordinal = Slab<Record>::Ordinal(i);
      changes_->listed[ordinal / 64] &= ~(uint64_t{1} << (ordinal % 64));
      if (Find(KeyAt(i)) == i) changed(i);  // a released record keeps its old key's text
    }
    changes_->Clear();
  }
  template <typename F>
  void ForEachKey(F f) const {
    for (const uint32_t i : index_) f(KeyAt(i));
  }

 private:
  // A free record's state is reset at once, so a stale reference to it (an
  // absence timer) sees an empty state.
  void Release(uint32_t i) {
    At(i) = V{};
    records_.Give(i);
  }

  static std::string_view View(const Slab<Record>* records, uint32_t i) { return records->Block(i)->key.view(); }
  static std::string_view View(const Slab<Record>*, std::string_view s) { return s; }
  struct Hash {
    using is_transparent = void;
    const Slab<Record>* records;
    template <typename K>
    size_t operator()(const K& k) const {
      const std::string_view s = View(records, k);
      return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
    }
  };
  struct Eq {
    using is_transparent = void;
    const Slab<Record>* records;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(records, a) == View(records, b);
    }
  };

  Slab<Record> records_;
  absl::flat_hash_set<uint32_t, Hash, Eq> index_;
  std::unique_ptr<Changes> changes_;  // null unless tracked
};

}  // namespace cxpulse

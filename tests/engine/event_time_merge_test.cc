#include "engine/event_time_merge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <tuple>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/events.h"

namespace cxpulse {
namespace {

using testing::kMinute;
using testing::kT0;
constexpr Micros kSecond = kMicrosPerSecond;

cx::v1::InteractionEvent At(const std::string& id, Micros t) {
  auto e = testing::Event(id, t, "c-" + id);
  e.mutable_contact_started();
  return e;
}

class MergeTest : public ::testing::Test {
 protected:
  void Make(int32_t partitions, Micros lateness = 0, Micros idle = 3600 * kSecond, size_t capacity = 1 << 10) {
    merge_ = std::make_unique<EventTimeMerge>(
        EventTimeMerge::Options{.allowed_lateness = lateness, .idle_timeout = idle, .capacity = capacity}, partitions);
  }
  EventTimeMerge::Outcome Push(int32_t p, const std::string& id, Micros t, bool keep = true) {
    const auto e = At(id, t);
    return merge_->Push(p, next_offset_[p]++, e, e.SerializeAsString(), keep, wall_);
  }
  // The ids released now, in order.
  std::vector<std::string> Release() {
    std::vector<std::string> ids;
    while (const EventTimeMerge::Released* r = merge_->Next(wall_)) ids.push_back(Id(*r));
    return ids;
  }
  static std::string Id(const EventTimeMerge::Released& r) {
    cx::v1::InteractionEvent e;
    EXPECT_TRUE(e.ParseFromArray(r.encoded.data(), static_cast<int>(r.encoded.size())));
    EXPECT_EQ(ToMicros(e.occurred_at()), r.time);
    return e.event_id();
  }

  std::unique_ptr<EventTimeMerge> merge_;
  std::map<int32_t, int64_t> next_offset_;
  Micros wall_ = kT0;
};

using Ids = std::vector<std::string>;

TEST_F(MergeTest, ReleasesInEventTimeOnceEveryPartitionsWatermarkIsAbove) {
  Make(3, /*lateness=*/10 * kSecond);
  EXPECT_EQ(Push(0, "a", kT0 + 5 * kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(1, "b", kT0 + 1 * kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), Ids{});  // partition 2 has said nothing: it may hold the oldest of all
  EXPECT_EQ(merge_->watermark(), Watermark::kNone);
  EXPECT_EQ(Push(2, "c", kT0 + 30 * kSecond), EventTimeMerge::Outcome::kHeld);
  // Watermarks: 0 at -5s, 1 at -9s, 2 at +20s: nothing is below the lowest.
  EXPECT_EQ(Release(), Ids{});
  EXPECT_EQ(Push(1, "d", kT0 + 20 * kSecond), EventTimeMerge::Outcome::kHeld);  // 1 at +10s
  EXPECT_EQ(Push(0, "e", kT0 + 16 * kSecond), EventTimeMerge::Outcome::kHeld);  // 0 at +6s
  EXPECT_EQ(Release(), (Ids{"b", "a"}));  // below +6s, in time order, not push order
  EXPECT_EQ(merge_->watermark(), kT0 + 6 * kSecond);
  EXPECT_EQ(merge_->held(), 3u);
}

TEST_F(MergeTest, TiesOnTimeGoByEventIdBytewise) {
  Make(2);
  EXPECT_EQ(Push(0, "e2", kT0), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(1, "e10", kT0), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(1, "E1", kT0), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(0, "x", kT0 + kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), Ids{});  // partition 1's watermark is kT0: an event at kT0 may still come
  EXPECT_EQ(Push(1, "y", kT0 + kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), (Ids{"E1", "e10", "e2"}));
}

TEST_F(MergeTest, AnEmptyPartitionHoldsBackForTheIdleTimeoutAQuietOneUntilItIdles) {
  Make(3, 0, /*idle=*/10 * kSecond);
  EXPECT_EQ(Push(0, "a", kT0), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(1, "b", kT0 + kMinute), EventTimeMerge::Outcome::kHeld);
  merge_->MarkAtEnd(2, wall_);  // at its end before its first event
  EXPECT_EQ(Push(0, "c", kT0 + 2 * kMinute), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), Ids{});  // it may yet bring older events (its producers run on)
  wall_ += 10 * kSecond;        // empty for the idle timeout: it holds nothing back
  EXPECT_EQ(Push(0, "d", kT0 + 2 * kMinute + 30 * kSecond), EventTimeMerge::Outcome::kHeld);
  // Both were idle 10 s too: their watermarks moved on 10 s (1 to kT0+1m10s).
  EXPECT_EQ(Push(1, "e", kT0 + kMinute + 15 * kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), (Ids{"a", "b"}));  // below partition 1's kT0+1m15s
  // Partition 1 is at its end too, but has had events: it holds back what is
  // not below its watermark until it has been idle for 10 s of wall clock.
  merge_->MarkAtEnd(1, wall_);
  wall_ += 9 * kSecond;
  EXPECT_EQ(Release(), Ids{});
  wall_ += 62 * kSecond;  // idle 71 s: its watermark is kT0 + 1m15s + 71s
  EXPECT_EQ(Release(), (Ids{"e", "c"}));
  EXPECT_EQ(merge_->LowWatermark(wall_), kT0 + kMinute + 86 * kSecond);
}

TEST_F(MergeTest, LateEventsAreRefusedAndCountedWhenARuleCouldUseThem) {
  Make(2, /*lateness=*/10 * kSecond, /*idle=*/10 * kSecond);
  EXPECT_EQ(Push(0, "a", kT0 + kMinute), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(0, "late", kT0), EventTimeMerge::Outcome::kLate);  // behind partition 0's kT0+50s
  EXPECT_EQ(Push(0, "late, unused", kT0, /*keep=*/false), EventTimeMerge::Outcome::kLate);
  EXPECT_EQ(Push(0, "in time", kT0 + 55 * kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(merge_->late(), 1u);  // only events a centre rule could use count
  merge_->MarkAtEnd(1, wall_);
  EXPECT_EQ(Release(), Ids{});
  wall_ += 10 * kSecond;  // partition 1 empty for the idle timeout (0's watermark idles on to kT0+60s)
  EXPECT_EQ(Push(0, "b", kT0 + 3 * kMinute), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Release(), (Ids{"in time", "a"}));
  // Partition 1, empty so far, starts with an event older than what was
  // released: it can no longer be put in order.
  EXPECT_EQ(Push(1, "too old", kT0 + kMinute), EventTimeMerge::Outcome::kLate);
  EXPECT_EQ(merge_->late(), 2u);
  // A newer one is held, and now partition 1 holds the release back too.
  EXPECT_EQ(Push(1, "newer", kT0 + 2 * kMinute + 55 * kSecond), EventTimeMerge::Outcome::kHeld);
  EXPECT_LT(merge_->LowWatermark(wall_), merge_->watermark());  // lowered, not the merged watermark
  EXPECT_EQ(Release(), Ids{});
}

TEST_F(MergeTest, EventsNoRuleUsesMoveTheWatermarkAndAreNotHeld) {
  Make(2);
  EXPECT_EQ(Push(0, "a", kT0), EventTimeMerge::Outcome::kHeld);
  EXPECT_EQ(Push(1, "unused", kT0 + kMinute, /*keep=*/false), EventTimeMerge::Outcome::kPassed);
  EXPECT_EQ(Push(0, "unused too", kT0 + kMinute, /*keep=*/false), EventTimeMerge::Outcome::kPassed);
  EXPECT_EQ(merge_->held(), 1u);
  EXPECT_EQ(Release(), Ids{"a"});
}

TEST_F(MergeTest, TheCommittableOffsetIsTheLowestStillHeldPerPartition) {
  Make(2, /*lateness=*/kMinute);
  ASSERT_EQ(Push(0, "p0-0", kT0 + 5 * kMinute), EventTimeMerge::Outcome::kHeld);  // offset 0
  ASSERT_EQ(Push(0, "p0-1", kT0 + 4 * kMinute + 30 * kSecond), EventTimeMerge::Outcome::kHeld);  // offset 1, older
  ASSERT_EQ(Push(1, "p1-0", kT0 + 10 * kMinute), EventTimeMerge::Outcome::kHeld);
  std::vector<int64_t> lowest;
  merge_->LowestHeldOffsets(&lowest);
  EXPECT_EQ(lowest, (std::vector<int64_t>{0, 0}));
  // Partition 0 at 4m, 1 at 9m: "p0-1" goes, "p0-0" (offset 0) stays.
  ASSERT_EQ(Push(0, "p0-2", kT0 + 5 * kMinute), EventTimeMerge::Outcome::kHeld);  // offset 2
  ASSERT_EQ(Push(0, "p0-3", kT0 + 5 * kMinute + 31 * kSecond), EventTimeMerge::Outcome::kHeld);  // 0 at 4m31s
  EXPECT_EQ(Release(), Ids{"p0-1"});
  merge_->LowestHeldOffsets(&lowest);
  EXPECT_EQ(lowest, (std::vector<int64_t>{0, 0}));
  ASSERT_EQ(Push(0, "p0-4", kT0 + 7 * kMinute), EventTimeMerge::Outcome::kHeld);  // 0 at 6m
  EXPECT_EQ(Release(), (Ids{"p0-0", "p0-2", "p0-3"}));
  merge_->LowestHeldOffsets(&lowest);
  EXPECT_EQ(lowest, (std::vector<int64_t>{4, 0}));
}

TEST_F(MergeTest, AFullMergeReleasesItsOldestOutOfTurn) {
  Make(2, 0, 3600 * kSecond, /*capacity=*/2);
  ASSERT_EQ(Push(0, "a", kT0 + kMinute), EventTimeMerge::Outcome::kHeld);
  ASSERT_EQ(Push(0, "b", kT0 + 2 * kMinute), EventTimeMerge::Outcome::kHeld);
  EXPECT_TRUE(merge_->full());
  EXPECT_EQ(Push(0, "refused", kT0 + 3 * kMinute), EventTimeMerge::Outcome::kLate);
  const EventTimeMerge::Released* r = merge_->NextToMakeRoom();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(Id(*r), "a");
  EXPECT_EQ(merge_->NextToMakeRoom(), nullptr);
  EXPECT_EQ(merge_->forced(), 1u);
  EXPECT_EQ(Push(0, "c", kT0 + 3 * kMinute), EventTimeMerge::Outcome::kHeld);
  // Partition 1 has said nothing, yet "a" is out: what it brings below "a" is late.
  EXPECT_EQ(Push(1, "older", kT0), EventTimeMerge::Outcome::kLate);
}

TEST_F(MergeTest, AtTheEndEverythingHeldIsReleasedInOrder) {
  Make(2);
  ASSERT_EQ(Push(1, "b", kT0 + kMinute), EventTimeMerge::Outcome::kHeld);
  ASSERT_EQ(Push(0, "a", kT0), EventTimeMerge::Outcome::kHeld);
  Ids ids;
  while (const EventTimeMerge::Released* r = merge_->NextAtEnd()) ids.push_back(Id(*r));
  EXPECT_EQ(ids, (Ids{"a", "b"}));
  EXPECT_EQ(merge_->held(), 0u);
}

// The point of it all: whatever the partition count, and however the
// partitions' deliveries interleave, the merged stream is the same, every
// event in (occurred_at, event_id) order.
TEST_F(MergeTest, TheMergedStreamDoesNotDependOnThePartitionLayout) {
  std::mt19937 rng(9);
  // 2000 events of 300 customers; each customer's events in time order
  // (one customer, one partition), times across customers jittered within
  // the lateness, with ties.
  struct Ev {
    std::string id, customer;
    Micros t;
  };
  std::vector<Ev> events;
  for (int i = 0; i < 2000; ++i) {
    events.push_back({"e" + std::to_string(i), "c" + std::to_string(rng() % 300),
                      kT0 + i * kSecond + static_cast<Micros>(rng() % 20) * kSecond});
  }
  std::map<std::string, Micros> newest;  // per customer, produce order = time order
  for (Ev& e : events) e.t = newest[e.customer] = std::max(newest[e.customer], e.t);
  std::vector<Ev> sorted = events;
  std::sort(sorted.begin(), sorted.end(),
            [](const Ev& a, const Ev& b) { return std::tie(a.t, a.id) < std::tie(b.t, b.id); });
  Ids expected;
  for (const Ev& e : sorted) expected.push_back(e.id);

  for (int32_t partitions : {1, 3, 8}) {
    SCOPED_TRACE(partitions);
    Make(partitions, /*lateness=*/30 * kSecond);
    next_offset_.clear();
    // Each partition's queue in produce order; deliveries interleave at random.
    std::vector<std::vector<Ev>> queues(static_cast<size_t>(partitions));
    for (const Ev& e : events) queues[std::hash<std::string>()(e.customer) % queues.size()].push_back(e);
    std::vector<size_t> at(queues.size(), 0);
    Ids got;
    for (size_t left = events.size(); left > 0;) {
      const size_t q = rng() % queues.size();
      if (at[q] == queues[q].size()) continue;
      const Ev& e = queues[q][at[q]++];
      ASSERT_EQ(Push(static_cast<int32_t>(q), e.id, e.t), EventTimeMerge::Outcome::kHeld) << e.id;
      --left;
      if (rng() % 4 == 0) {
        for (const std::string& id : Release()) got.push_back(id);
      }
    }
    for (int32_t p = 0; p < partitions; ++p) merge_->AdvancePartition(p, std::numeric_limits<Micros>::max() / 4, wall_);
    for (const std::string& id : Release()) got.push_back(id);
    EXPECT_EQ(got, expected);
  }
}

}  // namespace
}  // namespace cxpulse

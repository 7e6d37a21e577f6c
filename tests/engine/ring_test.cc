// Ring and Rings (engine/ring.h): (time, event id) entries kept in time
// order, in blocks that widen while a key needs more and narrow after.
#include "engine/ring.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/strings.h"

namespace cxpulse {
namespace {

std::vector<Micros> Times(const Ring& ring, Rings& rings) {
  std::vector<Micros> out;
  for (uint32_t i = 0; i < ring.size; ++i) out.push_back(ring.At(rings, i).time);
  return out;
}

TEST(RingTest, KeepsEntriesInTimeOrderWhenTheyArriveOutOfOrder) {
  Rings rings(3, 8);
  Ring ring;
  for (Micros t : {50, 10, 40, 20, 30}) ring.Push(rings, t, Cat("e", t));
  EXPECT_EQ(Times(ring, rings), (std::vector<Micros>{10, 20, 30, 40, 50}));
  for (uint32_t i = 0; i < ring.size; ++i) EXPECT_EQ(ring.At(rings, i).event_id.view(), Cat("e", ring.At(rings, i).time));
  EXPECT_FALSE(ring.lossy);
}

TEST(RingTest, WidensThroughItsClassesUpToTheMostThenForgetsTheOldest) {
  Rings rings(2, 8);  // classes: 1, 2, 4, 8
  ASSERT_EQ(rings.classes(), 4u);
  EXPECT_EQ(rings.most(), 8u);
  Ring ring;
  ring.Push(rings, 1, "e1");
  EXPECT_EQ(ring.Capacity(rings), 1u);
  ring.Push(rings, 2, "e2");
  EXPECT_EQ(ring.Capacity(rings), 2u);
  for (Micros t = 3; t <= 8; ++t) ring.Push(rings, t, Cat("e", t));
  EXPECT_EQ(ring.Capacity(rings), 8u);
  EXPECT_EQ(ring.size, 8u);
  EXPECT_FALSE(ring.lossy);
  ring.Push(rings, 9, "e9");  // full at the most: the oldest goes, and the count is a lower bound
  EXPECT_EQ(ring.size, 8u);
  EXPECT_TRUE(ring.lossy);
  EXPECT_EQ(Times(ring, rings).front(), 2);
  ring.PopOldest(rings);
  EXPECT_FALSE(ring.lossy);
  EXPECT_EQ(Times(ring, rings), (std::vector<Micros>{3, 4, 5, 6, 7, 8, 9}));
}

TEST(RingTest, NarrowsOnceAQuarterFullOrLessAndGivesItsBlockBack) {
  Rings rings(2, 16);
  Ring ring;
  for (Micros t = 1; t <= 16; ++t) ring.Push(rings, t, Cat("e", t));
  ASSERT_EQ(ring.Capacity(rings), 16u);
  while (ring.size > 4) ring.PopOldest(rings);
  ring.Fit(rings);
  EXPECT_EQ(ring.Capacity(rings), 8u);
  EXPECT_EQ(Times(ring, rings), (std::vector<Micros>{13, 14, 15, 16}));
  EXPECT_EQ(ring.At(rings, 0).event_id.view(), "e13");
  const uint32_t block = ring.block;
  ring.Release(rings);
  EXPECT_EQ(ring.block, Slab<RingEntry>::kNone);
  EXPECT_EQ(ring.size, 0u);
  // The released block is the next one of its class handed out.
  EXPECT_EQ(rings.Class(block >> Ring::kClassShift).Take(), block & Ring::kBlockMask);
}

}  // namespace
}  // namespace cxpulse

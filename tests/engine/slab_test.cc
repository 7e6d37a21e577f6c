// Slab (engine/slab.h): blocks by number that never move, freed blocks
// handed out again first, and a dense ordinal per block.
#include "engine/slab.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace cxpulse {
namespace {

TEST(SlabTest, BlocksAreDistinctAndNeverMoveAsTheSlabGrows) {
  Slab<uint64_t> slab(3);
  const uint32_t first = slab.Take();
  uint64_t* at = slab.Block(first);
  for (uint32_t i = 0; i < 3; ++i) at[i] = 100 + i;
  std::set<uint32_t> numbers{first};
  for (int i = 0; i < 200'000; ++i) {
    const uint32_t b = slab.Take();
    EXPECT_TRUE(numbers.insert(b).second) << "block " << b << " handed out twice";
    for (uint32_t j = 0; j < 3; ++j) slab.Block(b)[j] = b;
  }
  EXPECT_EQ(slab.Block(first), at);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(at[i], 100 + i);  // no other block overlapped it
}

TEST(SlabTest, AFreedBlockIsHandedOutAgainBeforeANewOne) {
  Slab<int> slab;
  const uint32_t a = slab.Take();
  const uint32_t b = slab.Take();
  slab.Give(a);
  EXPECT_EQ(slab.Take(), a);
  slab.Give(b);
  slab.Give(a);
  EXPECT_EQ(slab.Take(), a);
  EXPECT_EQ(slab.Take(), b);
  EXPECT_EQ(slab.width(), 1u);
}

TEST(SlabTest, OrdinalsCountBlocksInCarvingOrder) {
  Slab<char> slab;
  for (size_t i = 0; i < 300'000; ++i) ASSERT_EQ(Slab<char>::Ordinal(slab.Take()), i);
}

}  // namespace
}  // namespace cxpulse

// KeyTable (engine/key_table.h): keys to per-key state, and what changed
// since the last checkpoint.
#include "engine/key_table.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/strings.h"

namespace cxpulse {
namespace {

struct Changed {
  std::set<std::string> gone, changed;
};

template <typename V>
Changed Take(KeyTable<V>& t) {
  Changed c;
  t.TakeChanges([&](std::string_view key) { c.gone.emplace(key); },
                [&](uint32_t record) { c.changed.emplace(t.KeyAt(record)); });
  return c;
}

TEST(KeyTableTest, FindsInsertsAndErasesKeysOfAnyLength) {
  KeyTable<int> t;
  EXPECT_EQ(t.Find("c1"), KeyTable<int>::kNone);
  const uint32_t a = t.Insert("c1");
  const std::string long_key(60, 'k');  // longer than a record holds in place
  const uint32_t b = t.Insert(long_key);
  t.At(a) = 1;
  t.At(b) = 2;
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Find("c1"), a);
  EXPECT_EQ(t.Find(long_key), b);
  EXPECT_EQ(t.KeyAt(b), long_key);
  t.Erase(a);
  EXPECT_EQ(t.Find("c1"), KeyTable<int>::kNone);
  EXPECT_EQ(t.At(a), 0);  // a stale reference sees an empty state
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.At(t.Find(long_key)), 2);
}

TEST(KeyTableTest, EraseIfErasesWhatThePredicateSaysAndNothingElse) {
  KeyTable<int> t;
  for (int i = 0; i < 1000; ++i) t.At(t.Insert(Cat("c", i))) = i;
  EXPECT_EQ(t.EraseIf([](int v) { return v % 3 == 0; }), 334u);
  EXPECT_EQ(t.size(), 666u);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t r = t.Find(Cat("c", i));
    EXPECT_EQ(r == KeyTable<int>::kNone, i % 3 == 0) << i;
    if (r != KeyTable<int>::kNone) {
      EXPECT_EQ(t.At(r), i);
    }
  }
  size_t seen = 0;
  t.ForEachKey([&](std::string_view) { ++seen; });
  EXPECT_EQ(seen, 666u);
}

TEST(KeyTableTest, UntrackedItReportsNoChanges) {
  KeyTable<int> t;
  t.Touch(t.Insert("c1"));
  const Changed c = Take(t);
  EXPECT_TRUE(c.changed.empty());
  EXPECT_TRUE(c.gone.empty());
}

TEST(KeyTableTest, TrackedItReportsEachTouchedKeyOnceAndEachErasedKeyThatStayedGone) {
  KeyTable<int> t;
  t.TrackChanges();
  const uint32_t a = t.Insert("a");
  const uint32_t b = t.Insert("b");
  const uint32_t c = t.Insert("c");
  for (uint32_t r : {a, b, a, a, c}) t.Touch(r);
  Changed first = Take(t);
  EXPECT_EQ(first.changed, (std::set<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(first.gone.empty());
  EXPECT_TRUE(Take(t).changed.empty());  // nothing since

  t.Touch(b);
  t.Erase(b);           // touched, then gone: only gone
  t.Erase(c);           // erased and created again: only changed
  t.Touch(t.Insert("c"));
  t.Erase(a);           // its record goes to a new key "d"
  t.Touch(t.Insert("d"));
  Changed second = Take(t);
  EXPECT_EQ(second.gone, (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(second.changed, (std::set<std::string>{"c", "d"}));
}

}  // namespace
}  // namespace cxpulse

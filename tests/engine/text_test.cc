// Text (engine/text.h): inline text for per-key state, on the heap only
// when long, and reusing its heap buffer while the text fits.
#include "engine/text.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace cxpulse {
namespace {

TEST(TextTest, HoldsEveryLengthAroundItsInlineSize) {
  for (size_t n = 0; n <= 40; ++n) {
    Text<16> t;
    const std::string s(n, static_cast<char>('a' + n % 26));
    t.Assign(s);
    EXPECT_EQ(t.view(), s) << n;
  }
  Text<24> empty;
  EXPECT_EQ(empty.view(), "");
}

TEST(TextTest, GoesFromInlineToHeapAndBackKeepingTheText) {
  Text<16> t;
  t.Assign("short");
  EXPECT_EQ(t.view(), "short");
  const std::string long_id(100, 'x');
  t.Assign(long_id);
  EXPECT_EQ(t.view(), long_id);
  const char* heap = t.view().data();
  t.Assign("tiny");  // stays in its heap buffer, which it fits
  EXPECT_EQ(t.view(), "tiny");
  EXPECT_EQ(t.view().data(), heap);
  t.Assign(std::string(200, 'y'));  // outgrows it: a new buffer
  EXPECT_EQ(t.view(), std::string(200, 'y'));
  t.Assign("");
  EXPECT_EQ(t.view(), "");
}

TEST(TextTest, AssignsFromItsOwnBytes) {
  Text<16> t;
  t.Assign("abcdefghij");
  t.Assign(t.view().substr(3, 4));
  EXPECT_EQ(t.view(), "defg");
}

TEST(TextTest, AMoveTakesTheTextAndLeavesTheSourceEmpty) {
  Text<16> a;
  a.Assign(std::string(50, 'z'));
  Text<16> b(std::move(a));
  EXPECT_EQ(b.view(), std::string(50, 'z'));
  EXPECT_EQ(a.view(), "");  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  Text<16> c;
  c.Assign("inline");
  c = std::move(b);
  EXPECT_EQ(c.view(), std::string(50, 'z'));
  EXPECT_EQ(b.view(), "");  // NOLINT(bugprone-use-after-move)
}

}  // namespace
}  // namespace cxpulse

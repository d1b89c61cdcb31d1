#include "api/filters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace snapvol::api {
namespace {

Ec2Snapshot Snap(std::string id, std::string state, std::vector<Ec2Tag> tags = {}) {
  Ec2Snapshot s;
  s.snapshot_id = std::move(id);
  s.volume_id = "vol-00000000000000001";
  s.volume_size_gib = 8;
  s.state = std::move(state);
  s.start_time_ms = 1795658400000;  // 2026-11-26T02:00:00.000Z
  s.progress = s.state == "completed" ? "100%" : "10%";
  s.owner_id = "123456789012";
  s.owner_alias = "team-a";
  s.tags = std::move(tags);
  return s;
}

std::vector<Ec2Snapshot> Fleet() {
  std::vector<Ec2Snapshot> v;
  v.push_back(Snap("snap-a", "completed", {{"Name", "web-1 root"}, {"Owner", "team-a"}}));
  v.push_back(Snap("snap-b", "pending", {{"Name", "web-2 root"}}));
  v.push_back(Snap("snap-c", "completed", {{"Name", "db-1 data"}, {"Owner", "team-b"}}));
  v.push_back(Snap("snap-d", "error", {}));
  v.push_back(Snap("snap-e", "completed", {{"Name", "web*literal?"}}));
  v[1].volume_id = "vol-00000000000000002";
  v[2].description = "Daily backup of db";
  v[2].volume_size_gib = 100;
  v[2].encrypted = true;
  v[3].start_time_ms = 1768469400000;  // 2026-01-15T09:30:00.000Z
  v[3].owner_id = "210987654321";
  v[3].owner_alias = "";
  return v;
}

std::vector<std::string> Ids(const std::vector<Ec2Snapshot>& v) {
  std::vector<std::string> ids;
  for (const auto& s : v) ids.push_back(s.snapshot_id);
  return ids;
}

using IdList = std::vector<std::string>;

std::vector<std::string> Match(std::vector<QueryFilter> filters) {
  auto r = FilterSnapshots(Fleet(), filters);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? Ids(*r) : std::vector<std::string>{"<error>"};
}

TEST(Wildcard, Semantics) {
  EXPECT_TRUE(WildcardPattern("abc").Matches("abc"));
  EXPECT_FALSE(WildcardPattern("abc").Matches("abcd"));
  EXPECT_FALSE(WildcardPattern("abc").Matches("ABC"));  // case-sensitive
  EXPECT_TRUE(WildcardPattern("*").Matches(""));
  EXPECT_TRUE(WildcardPattern("").Matches(""));
  EXPECT_FALSE(WildcardPattern("").Matches("a"));
  EXPECT_TRUE(WildcardPattern("a*c").Matches("abbbc"));
  EXPECT_TRUE(WildcardPattern("a*c").Matches("ac"));
  EXPECT_TRUE(WildcardPattern("a**c").Matches("axc"));
  EXPECT_FALSE(WildcardPattern("a*c").Matches("abcd"));
  EXPECT_TRUE(WildcardPattern("a?c").Matches("abc"));
  EXPECT_FALSE(WildcardPattern("a?c").Matches("ac"));
  EXPECT_TRUE(WildcardPattern("?").Matches("\xC3\xA9"));  // one code point, two bytes
  EXPECT_FALSE(WildcardPattern("??").Matches("\xC3\xA9"));
  EXPECT_TRUE(WildcardPattern("*a*b*").Matches("xxaxxbxx"));
  EXPECT_FALSE(WildcardPattern("*a*b*").Matches("xxbxxaxx"));
  EXPECT_TRUE(WildcardPattern("web-*").Matches("web-1 root"));
  // Backslash escapes.
  EXPECT_TRUE(WildcardPattern("\\*").Matches("*"));
  EXPECT_FALSE(WildcardPattern("\\*").Matches("x"));
  EXPECT_TRUE(WildcardPattern("\\?\\\\").Matches("?\\"));
  EXPECT_TRUE(WildcardPattern("a\\").Matches("a\\"));  // a trailing backslash is literal
  // Worst-case-ish input stays fast (no exponential backtracking).
  EXPECT_FALSE(WildcardPattern(std::string(200, '*') + "b").Matches(std::string(2000, 'a')));
  EXPECT_FALSE(WildcardPattern("*a*a*a*a*a*a*a*b").Matches(std::string(256, 'a')));
}

TEST(Filters, SingleFilters) {
  EXPECT_EQ(Match({}), (IdList{"snap-a", "snap-b", "snap-c", "snap-d", "snap-e"}));
  EXPECT_EQ(Match({{"status", {"completed"}}}), (IdList{"snap-a", "snap-c", "snap-e"}));
  EXPECT_EQ(Match({{"status", {"pending", "error"}}}), (IdList{"snap-b", "snap-d"}));  // OR
  EXPECT_EQ(Match({{"volume-id", {"vol-00000000000000002"}}}), (IdList{"snap-b"}));
  EXPECT_EQ(Match({{"owner-id", {"210987654321"}}}), (IdList{"snap-d"}));
  EXPECT_EQ(Match({{"owner-alias", {"team-a"}}}), (IdList{"snap-a", "snap-b", "snap-c", "snap-e"}));
  EXPECT_EQ(Match({{"description", {"*backup*"}}}), (IdList{"snap-c"}));
  EXPECT_EQ(Match({{"snapshot-id", {"snap-a", "snap-e"}}}), (IdList{"snap-a", "snap-e"}));
  EXPECT_EQ(Match({{"progress", {"10%"}}}), (IdList{"snap-b", "snap-d"}));
  EXPECT_EQ(Match({{"start-time", {"2026-01-*"}}}), (IdList{"snap-d"}));
  EXPECT_EQ(Match({{"start-time", {"2026-11-26T02:00:00.000Z"}}}).size(), 4u);
  EXPECT_EQ(Match({{"volume-size", {"100"}}}), (IdList{"snap-c"}));
  EXPECT_EQ(Match({{"encrypted", {"true"}}}), (IdList{"snap-c"}));
  EXPECT_EQ(Match({{"encrypted", {"false"}}}).size(), 4u);
}

TEST(Filters, Tags) {
  EXPECT_EQ(Match({{"tag:Owner", {"team-a"}}}), (IdList{"snap-a"}));
  EXPECT_EQ(Match({{"tag:Owner", {"team-*"}}}), (IdList{"snap-a", "snap-c"}));
  EXPECT_EQ(Match({{"tag:Name", {"web-? root"}}}), (IdList{"snap-a", "snap-b"}));
  EXPECT_EQ(Match({{"tag:Name", {"web*"}}}), (IdList{"snap-a", "snap-b", "snap-e"}));
  EXPECT_EQ(Match({{"tag:Name", {"web\\*literal\\?"}}}), (IdList{"snap-e"}));
  EXPECT_EQ(Match({{"tag:name", {"*"}}}), IdList{});  // keys are case-sensitive
  EXPECT_EQ(Match({{"tag:Nam*", {"*"}}}), IdList{});  // keys are not patterns
  EXPECT_EQ(Match({{"tag-key", {"Owner"}}}), (IdList{"snap-a", "snap-c"}));
  EXPECT_EQ(Match({{"tag-key", {"O*", "N*"}}}), (IdList{"snap-a", "snap-b", "snap-c", "snap-e"}));
}

TEST(Filters, CombinationsAreAnded) {
  EXPECT_EQ(Match({{"status", {"completed"}}, {"tag:Name", {"web-*"}}}), (IdList{"snap-a"}));
  EXPECT_EQ(
      Match(
          {{"status", {"completed", "pending"}}, {"tag-key", {"Owner"}}, {"encrypted", {"false"}}}),
      (IdList{"snap-a"}));
  // The same filter name twice must match both times.
  EXPECT_EQ(Match({{"tag:Name", {"web*"}}, {"tag:Name", {"*root"}}}), (IdList{"snap-a", "snap-b"}));
  EXPECT_EQ(Match({{"status", {"completed"}}, {"status", {"pending"}}}), IdList{});
}

TEST(Filters, InvalidFilters) {
  auto bad = SnapshotMatcher::Create(std::vector<QueryFilter>{{"colour", {"red"}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "InvalidParameterValue");
  EXPECT_EQ(bad.error().message, "The filter 'colour' is invalid");
  EXPECT_EQ(bad.error().http_status, 400);
  EXPECT_FALSE(SnapshotMatcher::Create(std::vector<QueryFilter>{{"Status", {"x"}}}));
  EXPECT_FALSE(SnapshotMatcher::Create(std::vector<QueryFilter>{{"tag:", {"x"}}}));
  EXPECT_FALSE(SnapshotMatcher::Create(std::vector<QueryFilter>{{"status", {}}}));
  EXPECT_FALSE(SnapshotMatcher::Create(
      std::vector<QueryFilter>{{"status", std::vector<std::string>(201, "x")}}));
  EXPECT_FALSE(
      SnapshotMatcher::Create(std::vector<QueryFilter>{{"description", {std::string(1025, 'x')}}}));
  EXPECT_FALSE(SnapshotMatcher::Create(std::vector<QueryFilter>(51, {"status", {"x"}})));
}

TEST(Filters, FromARequest) {
  auto params = QueryParams::ParseFormBody(
      "Action=DescribeSnapshots&Filter.1.Name=tag%3AName&Filter.1.Value.1=web-%3F+root&"
      "Filter.2.Name=status&Filter.2.Value.1=completed");
  ASSERT_TRUE(params);
  auto filters = params->GetFilters();
  ASSERT_TRUE(filters);
  auto out = FilterSnapshots(Fleet(), *filters);
  ASSERT_TRUE(out);
  EXPECT_EQ(Ids(*out), IdList{"snap-a"});
}

TEST(Filters, DescribeSnapshotsRequest) {
  auto params = QueryParams::ParseFormBody(
      "Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.2=snap-b&SnapshotId.1=snap-a&"
      "Owner.1=self&Filter.1.Name=status&Filter.1.Value.1=completed&MaxResults=5&"
      "NextToken=t&DryRun=false");
  ASSERT_TRUE(params);
  auto req = ParseDescribeSnapshotsRequest(*params);
  ASSERT_TRUE(req) << req.error().message;
  EXPECT_EQ(req->snapshot_ids, (IdList{"snap-a", "snap-b"}));
  EXPECT_EQ(req->owner_ids, (IdList{"self"}));
  EXPECT_TRUE(req->restorable_by.empty());
  ASSERT_EQ(req->filters.size(), 1u);
  EXPECT_EQ(req->page.max_results, 5);
  EXPECT_EQ(req->page.next_token, "t");
  EXPECT_FALSE(req->dry_run);

  params = QueryParams::ParseFormBody("Filter.1.Name=colour&Filter.1.Value.1=red");
  ASSERT_TRUE(params);
  auto bad = ParseDescribeSnapshotsRequest(*params);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "The filter 'colour' is invalid");
}

// ---- Paging ----

std::vector<uint8_t> Key(uint8_t seed) { return std::vector<uint8_t>(32, seed); }

PageTokenCodec Codec(uint8_t seed = 7) {
  auto c = PageTokenCodec::Create(Key(seed));
  EXPECT_TRUE(c);
  return std::move(*c);
}

std::string NumberedId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "snap-%017x", static_cast<unsigned>(i * 7919 % 1000003));
  return buf;
}

TEST(Paging, KeyMustBeLongEnough) {
  EXPECT_FALSE(PageTokenCodec::Create(std::vector<uint8_t>(15, 1)));
  EXPECT_TRUE(PageTokenCodec::Create(std::vector<uint8_t>(16, 1)));
}

TEST(Paging, NoMaxResultsReturnsEverythingSorted) {
  std::vector<Ec2Snapshot> v = {Snap("snap-c", "completed"), Snap("snap-a", "completed"),
                                Snap("snap-b", "completed")};
  auto page = PaginateSnapshots(v, PageRequest{}, Codec(), "acct");
  ASSERT_TRUE(page);
  EXPECT_EQ(Ids(page->snapshots), (IdList{"snap-a", "snap-b", "snap-c"}));
  EXPECT_EQ(page->next_token, "");
}

TEST(Paging, MaxResultsBounds) {
  std::vector<Ec2Snapshot> v;
  for (int i = 0; i < 1200; ++i) v.push_back(Snap(NumberedId(i), "completed"));
  auto low = PaginateSnapshots(v, PageRequest{4, ""}, Codec(), "acct");
  ASSERT_FALSE(low);
  EXPECT_EQ(low.error().code, "InvalidParameterValue");
  auto five = PaginateSnapshots(v, PageRequest{5, ""}, Codec(), "acct");
  ASSERT_TRUE(five);
  EXPECT_EQ(five->snapshots.size(), 5u);
  EXPECT_NE(five->next_token, "");
  auto huge = PaginateSnapshots(v, PageRequest{100000, ""}, Codec(), "acct");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->snapshots.size(), 1000u);  // clamped as EC2 documents
  EXPECT_NE(huge->next_token, "");

  auto params = QueryParams::ParseFormBody("MaxResults=3");
  ASSERT_TRUE(params);
  EXPECT_EQ(ParsePageRequest(*params).error().code, "InvalidParameterValue");
  params = QueryParams::ParseFormBody("MaxResults=2000&NextToken=abc");
  ASSERT_TRUE(params);
  auto req = ParsePageRequest(*params);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->max_results, 2000);
  EXPECT_EQ(req->next_token, "abc");
  params = QueryParams::ParseFormBody("Action=DescribeSnapshots");
  ASSERT_TRUE(params);
  EXPECT_FALSE(ParsePageRequest(*params)->max_results.has_value());
}

TEST(Paging, ExactlyOnceOver2500WithAdditionsBetweenPages) {
  std::vector<Ec2Snapshot> store;
  std::set<std::string> original;
  for (int i = 0; i < 2500; ++i) {
    store.push_back(Snap(NumberedId(i), "completed"));
    original.insert(store.back().snapshot_id);
  }
  ASSERT_EQ(original.size(), 2500u);
  PageTokenCodec codec = Codec();
  std::map<std::string, int> seen;
  PageRequest req{37, ""};
  int pages = 0, added = 0;
  while (true) {
    auto page = PaginateSnapshots(store, req, codec, "123456789012");
    ASSERT_TRUE(page) << page.error().message;
    ASSERT_LE(page->snapshots.size(), 37u);
    for (const auto& s : page->snapshots) ++seen[s.snapshot_id];
    ++pages;
    if (page->next_token.empty()) break;
    req.next_token = page->next_token;
    // Between pages: new snapshots land both before and after the cursor.
    store.push_back(Snap("snap-!" + std::to_string(pages), "pending"));  // sorts first
    store.push_back(Snap("snap-~" + std::to_string(pages), "pending"));  // sorts last
    added += 2;
    // Shuffle-ish: the input order must not matter.
    std::rotate(store.begin(), store.begin() + 13, store.end());
  }
  for (const std::string& id : original) EXPECT_EQ(seen[id], 1) << id;
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  EXPECT_GT(pages, 2500 / 37);
  EXPECT_GT(added, 0);
}

TEST(Paging, DeletedCursorItemStillWorks) {
  std::vector<Ec2Snapshot> v;
  for (int i = 0; i < 20; ++i) v.push_back(Snap(NumberedId(i), "completed"));
  PageTokenCodec codec = Codec();
  auto first = PaginateSnapshots(v, PageRequest{5, ""}, codec, "a");
  ASSERT_TRUE(first);
  const std::string last = first->snapshots.back().snapshot_id;
  std::erase_if(v, [&](const Ec2Snapshot& s) { return s.snapshot_id == last; });
  auto second = PaginateSnapshots(v, PageRequest{100, first->next_token}, codec, "a");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->snapshots.size(), 15u);
  EXPECT_GT(second->snapshots.front().snapshot_id, last);
  EXPECT_EQ(second->next_token, "");
}

TEST(Paging, TamperedTokensAreRejected) {
  std::vector<Ec2Snapshot> v;
  for (int i = 0; i < 50; ++i) v.push_back(Snap(NumberedId(i), "completed"));
  PageTokenCodec codec = Codec();
  auto page = PaginateSnapshots(v, PageRequest{10, ""}, codec, "acct-1");
  ASSERT_TRUE(page);
  const std::string token = page->next_token;
  ASSERT_FALSE(token.empty());
  EXPECT_TRUE(codec.Decode("acct-1", token));

  const auto rejected = [&](const std::string& t, std::string_view scope = "acct-1") {
    auto r = PaginateSnapshots(v, PageRequest{10, t}, codec, scope);
    return !r && r.error().code == "InvalidPaginationToken" && r.error().http_status == 400;
  };
  // Every single-character change is caught.
  for (size_t i = 0; i < token.size(); ++i) {
    std::string t = token;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_TRUE(rejected(t)) << i;
  }
  EXPECT_TRUE(rejected(token.substr(0, token.size() - 1)));
  EXPECT_TRUE(rejected(token + "A"));
  EXPECT_TRUE(rejected(token + "="));
  EXPECT_TRUE(rejected("not a token"));
  EXPECT_TRUE(rejected("AQ"));
  EXPECT_TRUE(rejected(std::string(5000, 'A')));
  EXPECT_TRUE(rejected(token, "acct-2"));  // bound to the scope it was issued for
  auto other = Codec(8);
  EXPECT_FALSE(other.Decode("acct-1", token));  // and to the server key

  // A forged cursor for an id of our choosing, with a valid shape but no key, is refused.
  const std::string forged = codec.Encode("acct-1", "snap-0");
  EXPECT_TRUE(codec.Decode("acct-1", forged));
  EXPECT_FALSE(Codec(9).Decode("acct-1", forged));
}

}  // namespace
}  // namespace snapvol::api

// S3Store against a real S3 server (the Ceph RGW that tests/s3's fixture starts): the object
// contract, paging, Touch, batches, objects written in place (format 2's packs), and one clear
// error per misconfiguration. The endpoint and keys come from SNAPVOL_S3_* variables; without
// them every test fails (never skips).
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "core/clock.h"
#include "core/ids.h"
#include "store/s3_store.h"

namespace snapvol {
namespace {

std::string EnvOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

class S3LiveTest : public testing::Test {
 protected:
  void SetUp() override {
    base_.endpoint = EnvOr("SNAPVOL_S3_ENDPOINT");
    base_.bucket = EnvOr("SNAPVOL_S3_BUCKET");
    base_.region = EnvOr("SNAPVOL_S3_REGION", "us-east-1");
    base_.credentials = {EnvOr("SNAPVOL_S3_ACCESS_KEY"), EnvOr("SNAPVOL_S3_SECRET_KEY"), "", "test env"};
    ASSERT_FALSE(base_.endpoint.empty() || base_.bucket.empty() || base_.credentials.empty())
        << "SNAPVOL_S3_ENDPOINT, SNAPVOL_S3_BUCKET, SNAPVOL_S3_ACCESS_KEY and SNAPVOL_S3_SECRET_KEY "
           "must name a test bucket (ctest's ceph fixture sets them)";
    base_.prefix = "live-test/" + NewVolumeId();
    auto s = S3Store::Open(base_);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
  }

  std::unique_ptr<S3Store> OpenWith(const S3Config& c) {
    auto s = S3Store::Open(c);
    EXPECT_TRUE(s) << s.error().ToString();
    return s ? std::move(*s) : nullptr;
  }

  S3Config base_;
  std::unique_ptr<S3Store> store_;
};

TEST_F(S3LiveTest, ObjectContract) {
  auto missing = store_->Get("chunks/00/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(*store_->Exists("chunks/00/none"));
  EXPECT_TRUE(store_->Delete("chunks/00/none"));  // absent: still success
  auto touch_missing = store_->Touch("chunks/00/none");
  ASSERT_FALSE(touch_missing);
  EXPECT_EQ(touch_missing.error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->Put("a/b", Bytes("first")));
  ASSERT_TRUE(store_->Put("a/b", Bytes("second, longer")));  // replaces
  EXPECT_EQ(*store_->Get("a/b"), Bytes("second, longer"));
  EXPECT_TRUE(*store_->Exists("a/b"));
  std::vector<uint8_t> big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 131 >> 7);
  ASSERT_TRUE(store_->Put("big", big));
  EXPECT_EQ(*store_->Get("big"), big);
  // Ranged reads: exactly the bytes asked for; one past the end is refused, not cut short.
  auto mid = store_->GetRange("big", 1000003, 65536);
  ASSERT_TRUE(mid) << mid.error().ToString();
  EXPECT_TRUE(std::equal(mid->begin(), mid->end(), big.begin() + 1000003));
  EXPECT_EQ(mid->size(), 65536u);
  EXPECT_EQ(*store_->GetRange("big", big.size() - 1, 1), std::vector<uint8_t>{big.back()});
  auto past = store_->GetRange("big", big.size() - 10, 11);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kCorruption) << past.error().ToString();
  auto beyond = store_->GetRange("big", big.size() + 5, 1);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code(), ErrorCode::kCorruption) << beyond.error().ToString();
  EXPECT_EQ(store_->GetRange("chunks/00/none", 0, 1).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->Put("empty", {}));
  EXPECT_TRUE(store_->Get("empty")->empty());
  ASSERT_TRUE(store_->Delete("a/b"));
  EXPECT_FALSE(*store_->Exists("a/b"));

  auto bad = store_->Put("../escape", Bytes("x"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(S3LiveTest, DeleteManyRemovesEveryKeyAndSparesTheRest) {
  std::vector<std::string> doomed;
  for (int i = 0; i < 80; ++i) {
    doomed.push_back("chunks/" + std::to_string(100 + i));
    ASSERT_TRUE(store_->Put(doomed.back(), Bytes("d")));
  }
  ASSERT_TRUE(store_->Put("chunks/keep", Bytes("k")));
  doomed.push_back("chunks/absent");
  ASSERT_TRUE(store_->DeleteMany(doomed));
  auto left = store_->List("chunks/");
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().key, "chunks/keep");
  // A bad key is refused before anything is sent.
  auto bad = store_->DeleteMany({"chunks/keep", "../escape"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(*store_->Exists("chunks/keep"));
}

TEST_F(S3LiveTest, ListPagesThroughContinuationTokensAndStaysInsideThePrefix) {
  store_->set_list_page_size(7);
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(store_->Put("chunks/" + std::to_string(100 + i), std::vector<uint8_t>(i, 1)));
  ASSERT_TRUE(store_->Put("index/x", Bytes("y")));
  // A neighbour prefix that starts with ours must not leak in.
  S3Config other = base_;
  other.prefix = base_.prefix + "x";
  auto neighbour = OpenWith(other);
  ASSERT_TRUE(neighbour->Put("chunks/999", Bytes("not yours")));

  const int64_t now = Clock::Real()->NowMillis();
  auto listed = store_->List("chunks/");
  ASSERT_TRUE(listed) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 25u);
  std::set<std::string> keys;
  for (const auto& o : *listed) {
    keys.insert(o.key);
    EXPECT_EQ(o.size, static_cast<uint64_t>(std::stoi(o.key.substr(7)) - 100));
    // Server and test share a clock here; a minute covers any slowness.
    EXPECT_LT(std::abs(o.mtime_ms - now), 60 * 1000) << o.key;
  }
  EXPECT_EQ(keys.size(), 25u);
  EXPECT_EQ(store_->List("")->size(), 26u);
  EXPECT_TRUE(store_->List("nothing/")->empty());
}

TEST_F(S3LiveTest, TouchMakesTheObjectYoungerAndKeepsItsBytes) {
  ASSERT_TRUE(store_->Put("chunks/t", Bytes("touch me")));
  int64_t before = store_->List("chunks/")->at(0).mtime_ms;
  // LastModified has millisecond resolution; wait until the server must stamp a later one.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(store_->Touch("chunks/t"));
  int64_t after = store_->List("chunks/")->at(0).mtime_ms;
  EXPECT_GT(after, before);
  EXPECT_EQ(*store_->Get("chunks/t"), Bytes("touch me"));
}

TEST_F(S3LiveTest, BatchUploadsEverythingByCommit) {
  auto batch = store_->NewBatch();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string key = "chunks/" + std::to_string(t) + "/" + std::to_string(i);
        EXPECT_TRUE(batch->Add(key, std::vector<uint8_t>(1000 + i, static_cast<uint8_t>(t))));
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(batch->Commit());
  EXPECT_EQ(batch->PendingBytes(), 0u);
  EXPECT_EQ(store_->List("chunks/")->size(), 200u);
  EXPECT_EQ(*store_->Get("chunks/3/49"), std::vector<uint8_t>(1049, 3));
}

// Format 2's pack writes on S3: an object written in place by several threads at disjoint
// offsets (as a job's encoder threads append objects to its open pack), sealed, and published
// by the batch's Commit: the bytes read back whole and by range are the ones written where they
// were written. A writer dropped before Seal publishes nothing, even after Commit.
TEST_F(S3LiveTest, ObjectWrittenInPlaceByManyThreadsIsWholeAfterSealAndCommit) {
  constexpr size_t kPiece = 300 * 1024 + 17;  // odd sizes: pieces straddle any buffer boundary
  constexpr size_t kPieces = 64;             // ~19 MiB, a pack of the default 16 MiB target
  constexpr int kThreads = 4;
  std::vector<uint8_t> want(kPiece * kPieces);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  auto batch = store_->NewBatch();
  auto writer = batch->NewObject("packs/ab/in-place", 4 << 20);  // grows past its hint
  ASSERT_TRUE(writer) << writer.error().ToString();
  auto dropped = batch->NewObject("packs/cd/dropped", 1 << 20);
  ASSERT_TRUE(dropped) << dropped.error().ToString();
  ASSERT_TRUE((*dropped)->WriteAt(0, std::span(want).first(kPiece)));

  // Thread t writes pieces t, t + kThreads, …, from the last one down, so the object's end is
  // written before its middle.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (size_t p = kPieces - kThreads + t; p < kPieces; p -= kThreads) {
        Status st = (*writer)->WriteAt(p * kPiece, std::span(want).subspan(p * kPiece, kPiece));
        EXPECT_TRUE(st) << st.error().ToString();
        if (p < kThreads) break;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_FALSE(*store_->Exists("packs/ab/in-place"));  // nothing published before Seal and Commit
  auto short_seal = (*writer)->Seal(want.size() - 1);
  ASSERT_FALSE(short_seal);  // a size other than what was written is refused
  EXPECT_EQ(short_seal.error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE((*writer)->Seal(want.size()));
  dropped->reset();  // never sealed
  ASSERT_TRUE(batch->Commit());

  auto got = store_->Get("packs/ab/in-place");
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), want.size());
  EXPECT_TRUE(*got == want) << "the object read back differs from what the threads wrote";
  // Ranged reads inside it, as restores read pack entries: across a piece boundary, the first
  // and the last byte.
  const uint64_t at = 17 * kPiece - 100;
  auto range = store_->GetRange("packs/ab/in-place", at, kPiece);
  ASSERT_TRUE(range) << range.error().ToString();
  EXPECT_TRUE(std::equal(range->begin(), range->end(), want.begin() + at));
  EXPECT_EQ(range->size(), kPiece);
  EXPECT_EQ(*store_->GetRange("packs/ab/in-place", 0, 1), std::vector<uint8_t>{want.front()});
  EXPECT_EQ(*store_->GetRange("packs/ab/in-place", want.size() - 1, 1), std::vector<uint8_t>{want.back()});
  auto listed = store_->List("packs/");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u) << "the dropped writer left an object";
  EXPECT_EQ(listed->front().key, "packs/ab/in-place");
  EXPECT_EQ(listed->front().size, want.size());
}

TEST_F(S3LiveTest, BatchCommitReportsTheFailure) {
  S3Config wrong = base_;
  wrong.credentials.secret_access_key = "not-the-secret";
  auto bad = OpenWith(wrong);
  auto batch = bad->NewBatch();
  Status first;
  for (int i = 0; i < 10 && first; ++i) first = batch->Add("chunks/" + std::to_string(i), Bytes("data"));
  Status committed = batch->Commit();
  // Either Add already saw an upload fail, or Commit reports it.
  Status failure = !first ? first : committed;
  ASSERT_FALSE(failure);
  EXPECT_EQ(failure.error().code(), ErrorCode::kUnauthorized);
  EXPECT_TRUE(store_->List("chunks/")->empty());
}

TEST_F(S3LiveTest, WrongSecretUnknownKeyMissingBucketAndUnreachableEndpointEachSaySo) {
  S3Config c = base_;
  c.credentials.secret_access_key = "wrong-secret";
  auto probe = OpenWith(c)->Probe(0);
  ASSERT_FALSE(probe);
  EXPECT_EQ(probe.error().code(), ErrorCode::kUnauthorized);
  EXPECT_NE(probe.error().message().find("wrong secret key"), std::string::npos) << probe.error().message();
  EXPECT_EQ(probe.error().message().find("wrong-secret"), std::string::npos) << "leaked the secret";

  c = base_;
  c.credentials.access_key_id = "NOSUCHKEY0000000";
  probe = OpenWith(c)->Probe(0);
  ASSERT_FALSE(probe);
  EXPECT_EQ(probe.error().code(), ErrorCode::kUnauthorized);
  EXPECT_NE(probe.error().message().find("NOSUCHKEY0000000"), std::string::npos) << probe.error().message();

  c = base_;
  c.bucket = "no-such-bucket-" + NewVolumeId().substr(4);
  probe = OpenWith(c)->Probe(0);
  ASSERT_FALSE(probe);
  EXPECT_EQ(probe.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(probe.error().message().find("does not exist"), std::string::npos) << probe.error().message();
  auto get = OpenWith(c)->Get("config");
  ASSERT_FALSE(get);
  EXPECT_NE(get.error().message().find("does not exist"), std::string::npos) << get.error().message();

  c = base_;
  c.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  auto unreachable = OpenWith(c);
  probe = unreachable->Probe(300);
  ASSERT_FALSE(probe);
  EXPECT_EQ(probe.error().code(), ErrorCode::kIoError);
  EXPECT_TRUE(probe.error().retryable());
  EXPECT_NE(probe.error().message().find("cannot reach"), std::string::npos) << probe.error().message();

  auto good = store_->Probe(0);
  ASSERT_TRUE(good) << good.error().ToString();
  EXPECT_EQ(good->skew_ms, 0);  // the server runs on this machine's clock
}

}  // namespace
}  // namespace snapvol

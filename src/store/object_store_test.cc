// The ObjectStore contract, run against every implementation.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "core/hash.h"
#include "core/ids.h"
#include "store/fault_store.h"
#include "store/local_store.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

class ObjectStoreContract : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "local") {
      dir_ = testing::TempDir() + "/store-" + NewVolumeId();
      auto s = LocalStore::Open(dir_);
      ASSERT_TRUE(s);
      store_ = std::move(*s);
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
  }
  std::string dir_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreContract, PutGetExistsDeleteList) {
  ASSERT_TRUE(store_->Put("chunks/ab/one", Bytes("hello")));
  ASSERT_TRUE(store_->Put("chunks/cd/two", Bytes("world!")));
  ASSERT_TRUE(store_->Put("manifests/x", Bytes("m")));
  auto got = store_->Get("chunks/ab/one");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, Bytes("hello"));
  EXPECT_TRUE(*store_->Exists("chunks/cd/two"));
  EXPECT_FALSE(*store_->Exists("chunks/cd/three"));
  auto missing = store_->Get("chunks/ab/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

  auto listed = store_->List("chunks/");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  uint64_t total = 0;
  for (auto& o : *listed) total += o.size;
  EXPECT_EQ(total, 11u);
  EXPECT_EQ(store_->List("manifests/")->size(), 1u);
  EXPECT_EQ(store_->List("chunks/ab/")->size(), 1u);
  EXPECT_EQ(store_->List("nothing/")->size(), 0u);

  ASSERT_TRUE(store_->Put("chunks/ab/one", Bytes("replaced")));
  EXPECT_EQ(*store_->Get("chunks/ab/one"), Bytes("replaced"));
  ASSERT_TRUE(store_->Delete("chunks/ab/one"));
  ASSERT_TRUE(store_->Delete("chunks/ab/one"));  // idempotent
  EXPECT_FALSE(*store_->Exists("chunks/ab/one"));
  EXPECT_EQ(store_->Touch("chunks/ab/one").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->Touch("chunks/cd/two"));
}

TEST_P(ObjectStoreContract, GetRangeReadsExactlyTheRangeAndRefusesOneBeyondTheEnd) {
  ASSERT_TRUE(store_->Put("packs/ab/p", Bytes("0123456789")));
  EXPECT_EQ(*store_->GetRange("packs/ab/p", 0, 10), Bytes("0123456789"));
  EXPECT_EQ(*store_->GetRange("packs/ab/p", 3, 4), Bytes("3456"));
  EXPECT_EQ(*store_->GetRange("packs/ab/p", 9, 1), Bytes("9"));
  EXPECT_TRUE(store_->GetRange("packs/ab/p", 10, 0)->empty());
  auto past = store_->GetRange("packs/ab/p", 8, 3);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kCorruption) << past.error().ToString();
  auto beyond = store_->GetRange("packs/ab/p", 11, 1);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code(), ErrorCode::kCorruption);
  auto missing = store_->GetRange("packs/ab/none", 0, 1);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST_P(ObjectStoreContract, DeleteManyRemovesEveryKeyAndSparesTheRest) {
  std::vector<std::string> doomed;
  for (int i = 0; i < 20; ++i) {
    std::string key = "chunks/" + std::to_string(10 + i) + "/x";
    ASSERT_TRUE(store_->Put(key, Bytes("d")));
    doomed.push_back(key);
  }
  ASSERT_TRUE(store_->Put("chunks/99/keep", Bytes("k")));
  doomed.push_back("chunks/00/absent");  // absent keys succeed
  ASSERT_TRUE(store_->DeleteMany(doomed));
  auto left = store_->List("chunks/");
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().key, "chunks/99/keep");
  ASSERT_TRUE(store_->DeleteMany({}));
  EXPECT_EQ(store_->DeleteMany({"../bad"}).error().code(), ErrorCode::kInvalidArgument);
}

TEST_P(ObjectStoreContract, RejectsBadKeys) {
  for (std::string key : {"", "/abs", "a/../b", "a//b", "UPPER", "a/./b", "x.tmp-1"}) {
    auto st = store_->Put(key, Bytes("x"));
    ASSERT_FALSE(st) << key;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << key;
  }
}

TEST_P(ObjectStoreContract, BatchVisibleAfterCommit) {
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch->Add("chunks/00/a", Bytes("aaa")));
  ASSERT_TRUE(batch->Add("chunks/01/b", Bytes("bb")));
  EXPECT_EQ(batch->PendingBytes(), 5u);
  ASSERT_TRUE(batch->Commit());
  EXPECT_EQ(batch->PendingBytes(), 0u);
  EXPECT_EQ(*store_->Get("chunks/00/a"), Bytes("aaa"));
  EXPECT_EQ(*store_->Get("chunks/01/b"), Bytes("bb"));
}

// A format-2 pack is written in place by many threads at once, each at the offset its object
// was placed at, then sealed and published with the batch.
TEST_P(ObjectStoreContract, ObjectWrittenInPiecesByManyThreadsIsOneObjectAfterCommit) {
  constexpr size_t kPiece = 64 * 1024, kPieces = 24;
  std::vector<uint8_t> want(kPiece * kPieces);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<uint8_t>((i * 131) >> 7);
  auto batch = store_->NewBatch();
  // A hint far below the size: the in-memory writer grows while threads write.
  auto writer = batch->NewObject("packs/0a/p", 1000);
  ASSERT_TRUE(writer) << writer.error().message();
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = kPieces - 1 - t; i < kPieces; i -= 4) {  // back to front: holes fill in later
        std::span<const uint8_t> piece(want.data() + i * kPiece, kPiece);
        if (!(*writer)->WriteAt(i * kPiece, piece)) ++failed;
        if (i < 4) break;
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(failed.load(), 0);
  ASSERT_TRUE((*writer)->Seal(want.size()));
  ASSERT_TRUE(batch->Commit());
  auto got = store_->Get("packs/0a/p");
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(*got == want);
}

TEST_P(ObjectStoreContract, ObjectWriterSealedAtAnotherSizeThanWrittenIsRefusedAndDroppedOnesLeaveNothing) {
  auto batch = store_->NewBatch();
  auto wrong = *batch->NewObject("packs/0b/wrong", 64);
  ASSERT_TRUE(wrong->WriteAt(0, Bytes("0123456789")));
  auto sealed = wrong->Seal(12);
  ASSERT_FALSE(sealed);
  EXPECT_NE(sealed.error().message().find("10 were written"), std::string::npos) << sealed.error().message();
  wrong.reset();
  auto dropped = *batch->NewObject("packs/0c/dropped", 64);
  ASSERT_TRUE(dropped->WriteAt(0, Bytes("never sealed")));
  dropped.reset();
  ASSERT_TRUE(batch->Commit());
  EXPECT_FALSE(*store_->Exists("packs/0b/wrong"));
  EXPECT_FALSE(*store_->Exists("packs/0c/dropped"));
  if (auto* local = dynamic_cast<LocalStore*>(store_.get()))
    EXPECT_EQ(*local->RemoveStaleTemporaries(INT64_MAX), 0u);  // no temporary file left behind
}

INSTANTIATE_TEST_SUITE_P(AllStores, ObjectStoreContract, testing::Values("local", "memory"));

TEST(LocalStore, BatchInvisibleBeforeCommitAndTemporariesNotListed) {
  std::string dir = testing::TempDir() + "/store-" + NewVolumeId();
  auto store = *LocalStore::Open(dir);
  auto batch = store->NewBatch();
  ASSERT_TRUE(batch->Add("chunks/00/a", Bytes("aaa")));
  EXPECT_FALSE(*store->Exists("chunks/00/a"));
  EXPECT_EQ(store->List("chunks/")->size(), 0u);
  // Destroying an uncommitted batch removes its temporaries.
  batch.reset();
  auto removed = store->RemoveStaleTemporaries(INT64_MAX);
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 0u);
}

// Store objects hold every team's data: owner-only whatever the process's umask, for objects
// put one by one and for a batch's (packs, chunks).
TEST(LocalStore, ObjectsAreOwnerOnlyWhateverTheUmask) {
  std::string dir = testing::TempDir() + "/store-" + NewVolumeId();
  auto store = *LocalStore::Open(dir);
  mode_t old = ::umask(022);
  ASSERT_TRUE(store->Put("config", Bytes("c")));
  auto batch = store->NewBatch();
  ASSERT_TRUE(batch->Add("packs/00/p", Bytes("pack")));
  auto written = *batch->NewObject("packs/01/q", 16);
  ASSERT_TRUE(written->WriteAt(0, Bytes("pack")));
  ASSERT_TRUE(written->Seal(4));
  ASSERT_TRUE(batch->Commit());
  ::umask(old);
  for (const char* key : {"config", "packs/00/p", "packs/01/q"}) {
    struct stat st{};
    ASSERT_EQ(::stat((dir + "/" + key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
}

TEST(LocalStore, StaleTemporariesRemoved) {
  std::string dir = testing::TempDir() + "/store-" + NewVolumeId();
  auto store = *LocalStore::Open(dir);
  ASSERT_TRUE(MakeDirs(dir + "/chunks/aa"));
  ASSERT_TRUE(WriteFileAtomic(dir + "/chunks/aa/x.tmp-123", AsBytes("junk")));
  EXPECT_EQ(store->List("chunks/")->size(), 0u);
  EXPECT_EQ(*store->RemoveStaleTemporaries(INT64_MAX), 1u);
  EXPECT_FALSE(PathExists(dir + "/chunks/aa/x.tmp-123"));
}

TEST(FaultStore, FailsNthWriteAndRead) {
  MemoryStore base;
  FaultInjectingStore f(&base);
  f.FailWritesFrom(3);
  EXPECT_TRUE(f.Put("a", Bytes("1")));
  EXPECT_TRUE(f.Put("b", Bytes("2")));
  auto st = f.Put("c", Bytes("3"));
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().retryable());
  EXPECT_FALSE(*base.Exists("c"));
  f.FailWritesFrom(0);
  f.FailReadsFrom(2);
  EXPECT_TRUE(f.Get("a"));
  EXPECT_FALSE(f.Get("a"));
}

TEST(FaultStore, FullDiskAndCorruptReads) {
  MemoryStore base;
  FaultInjectingStore f(&base);
  f.SetSpaceLeft(4);
  EXPECT_TRUE(f.Put("a", Bytes("123")));
  auto st = f.Put("b", Bytes("45"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kNoSpace);
  f.SetSpaceLeft(-1);
  ASSERT_TRUE(f.Put("chunks/x", Bytes("abcdef")));
  f.CorruptReadsOf("chunks/");
  EXPECT_NE(*f.Get("chunks/x"), Bytes("abcdef"));
  EXPECT_EQ(*base.Get("chunks/x"), Bytes("abcdef"));
}

TEST(FaultStore, CrashLosesUncommittedBatch) {
  MemoryStore base;
  FaultInjectingStore f(&base);
  auto batch = f.NewBatch();
  ASSERT_TRUE(batch->Add("chunks/a", Bytes("1")));
  EXPECT_FALSE(*base.Exists("chunks/a"));
  f.Crash();
  EXPECT_FALSE(batch->Commit());
  EXPECT_FALSE(*base.Exists("chunks/a"));
  auto b2 = f.NewBatch();
  ASSERT_TRUE(b2->Add("chunks/b", Bytes("2")));
  ASSERT_TRUE(b2->Commit());
  EXPECT_TRUE(*base.Exists("chunks/b"));
}

}  // namespace
}  // namespace snapvol

// CountingStore and the Repository's read checks count failed store operations by op and kind
// in snapvol_store_errors_total; NotFound answers are not failures.
#include "store/counting_store.h"

#include <gtest/gtest.h>

#include "core/hash.h"
#include "core/service_metrics.h"
#include "store/fault_store.h"
#include "store/memory_store.h"
#include "store/repository.h"

namespace snapvol {
namespace {

double Errors(const char* op, const char* kind) { return ServiceMetrics().store_errors.With({op, kind})->Value(); }

TEST(CountingStore, CountsFailuresByOperationAndKind) {
  MemoryStore mem;
  auto fault = std::make_unique<FaultInjectingStore>(&mem);
  FaultInjectingStore* f = fault.get();
  auto store = NewCountingStore(std::move(fault));
  const double put_io = Errors("put", "io"), put_full = Errors("put", "no_space"), get_other = Errors("get", "other");
  const std::string data = "payload";
  ASSERT_TRUE(store->Put("a", AsBytes(data)));
  EXPECT_EQ(store->Get("missing").error().code(), ErrorCode::kNotFound);  // an answer, not counted
  f->FailWritesFrom(1);
  EXPECT_FALSE(store->Put("b", AsBytes(data)));
  auto batch = store->NewBatch();
  EXPECT_FALSE(batch->Add("c", AsBytes(data)));
  EXPECT_EQ(Errors("put", "io"), put_io + 2);
  f->FailWritesFrom(0);
  f->SetSpaceLeft(0);
  EXPECT_EQ(store->Put("d", AsBytes(data)).error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(Errors("put", "no_space"), put_full + 1);
  EXPECT_EQ(Errors("get", "other"), get_other);
  EXPECT_EQ(store->Describe(), "faulty(" + mem.Describe() + ")");
}

TEST(CountingStore, DamagedOrMissingChunksCountAsCorruption) {
  MemoryStore mem;
  auto fault = std::make_unique<FaultInjectingStore>(&mem);
  FaultInjectingStore* f = fault.get();
  auto repo = Repository::Create(NewCountingStore(std::move(fault)), {});
  ASSERT_TRUE(repo) << repo.error().message();
  std::vector<uint8_t> block((*repo)->block_size(), 7);
  Digest id = (*repo)->IdOf(block);
  auto writer = (*repo)->NewWriter();
  ASSERT_TRUE(writer->PutChunk(id, block));
  ASSERT_TRUE(writer->Finish());
  const double read = Errors("read_chunk", "corruption"), verify = Errors("verify_chunk", "corruption");
  std::vector<uint8_t> out(block.size());
  ASSERT_TRUE((*repo)->ReadChunk(id, out));
  f->CorruptReadsOf((*repo)->format() == 2 ? kPackPrefix : "chunks/");
  EXPECT_EQ((*repo)->ReadChunk(id, out).error().code(), ErrorCode::kCorruption);
  std::optional<uint64_t> n;
  EXPECT_FALSE((*repo)->CheckChunk(id, /*checksum_only=*/true, &n));
  Digest absent = (*repo)->IdOf(std::vector<uint8_t>(block.size(), 9));
  EXPECT_EQ((*repo)->ReadChunk(absent, out).error().code(), ErrorCode::kCorruption);
  EXPECT_EQ(Errors("read_chunk", "corruption"), read + 2);
  EXPECT_EQ(Errors("verify_chunk", "corruption"), verify + 1);
}

}  // namespace
}  // namespace snapvol

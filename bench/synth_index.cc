// snapvol-synth-index: adds synthetic entries to a format-2 store's index, to measure what
// opening a store with millions of chunks costs (docs/store-format.md, "The index in memory
// and its cache file").
//
//   snapvol-synth-index DATA_DIR ENTRIES [ENTRIES_PER_OBJECT [--with-packs]]
//
// Publishes packindex/ objects of at most ENTRIES_PER_OBJECT entries (default: as a writer
// does now, kMaxEntriesPerIndexObject; 1048576 makes objects as large as writers made them
// before) naming ENTRIES random chunk ids in packs of 32 (16 MiB packs
// of 512 KiB chunks) that are not in the store: lookups of real chunks, and anything that
// reads the index, see a store of that size; reading one of these entries fails (its pack is
// absent), and a gc would drop them as lost. With --with-packs each pack is also stored, as
// an empty object, so that a gc lists it: while young it is kept, and a gc rewrites the whole
// index (what `snapvol gc` holds while it sweeps and rewrites millions of entries). For a
// scratch data dir only (local store).

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "core/aead.h"
#include "store/local_store.h"
#include "store/packed_objects.h"
#include "store/repository.h"

using namespace snapvol;

int main(int argc, char** argv) {
  const bool with_packs = argc == 5 && std::string(argv[4]) == "--with-packs";
  if (argc != 3 && argc != 4 && !with_packs) {
    std::fprintf(stderr, "usage: snapvol-synth-index DATA_DIR ENTRIES [ENTRIES_PER_OBJECT [--with-packs]]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t total = std::strtoull(argv[2], nullptr, 10);
  const uint64_t per_object = argc >= 4 ? std::strtoull(argv[3], nullptr, 10) : kMaxEntriesPerIndexObject;
  if (per_object < 32 || per_object > (1u << 20)) {
    std::fprintf(stderr, "snapvol-synth-index: ENTRIES_PER_OBJECT must be 32 to 1048576\n");
    return 2;
  }
  auto key = ReadKeyFile(dir + "/store.key");
  auto store = LocalStore::Open(dir + "/store");
  if (!key || !store) {
    std::fprintf(stderr, "snapvol-synth-index: %s is not a data dir with a local store\n", dir.c_str());
    return 1;
  }
  RepositoryOptions ro;
  ro.master_key = *key;
  auto repo = Repository::Open(std::move(*store), ro);
  if (!repo || (*repo)->format() != 2) {
    std::fprintf(stderr, "snapvol-synth-index: %s\n",
                 repo ? "the store is not format 2" : repo.error().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(std::random_device{}());
  auto random_digest = [&] {
    Digest d;
    for (size_t i = 0; i < d.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(d.data() + i, &v, 8);
    }
    return d;
  };
  const std::string writer = ToHex(random_digest()).substr(0, 32);
  uint32_t seq = 0;
  auto batch = (*repo)->store()->NewBatch();
  for (uint64_t done = 0; done < total;) {
    std::vector<IndexedPack> packs;
    uint64_t in_object = 0;
    while (done < total && in_object + 32 <= per_object) {
      IndexedPack p{random_digest(), {}};
      for (uint32_t i = 0; i < 32 && done < total; ++i, ++done, ++in_object)
        p.entries.push_back({random_digest(), ObjectKind::kChunk, i << 19, 1u << 19});
      if (with_packs && !batch->Add(PackedObjects::PackKey(p.pack), std::vector<uint8_t>{})) {
        std::fprintf(stderr, "snapvol-synth-index: writing a pack failed\n");
        return 1;
      }
      packs.push_back(std::move(p));
    }
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "-%08x", seq++);
    const std::string k = std::string(kPackIndexPrefix) + writer + suffix;
    auto enc = (*repo)->codec().Encode(ObjectKind::kStoreIndex, Sha256(AsBytes(k)), EncodeStoreIndex(packs));
    if (!enc || !(*repo)->store()->Put(k, *enc)) {
      std::fprintf(stderr, "snapvol-synth-index: writing %s failed\n", k.c_str());
      return 1;
    }
  }
  if (!batch->Commit()) {
    std::fprintf(stderr, "snapvol-synth-index: writing the packs failed\n");
    return 1;
  }
  std::printf("%llu entries in %u packindex/ objects\n", static_cast<unsigned long long>(total), seq);
  return 0;
}

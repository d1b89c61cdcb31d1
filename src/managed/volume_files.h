// The one place that names the files of a volume snapvol owns, and creates or removes them
// (as leveldb's filename.h does for a database): DIR/vol-….img holds the data, and beside it
//   IMG.cbt          the changed-block bitmap (managed volumes),
//   IMG.load         the load map of a volume restored lazily (until every block is in),
//   IMG.cow-SNAP     blocks copied aside for a snapshot still reading the volume.
// Thread-safety: pure functions over paths; the file operations are safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "catalog/catalog.h"
#include "core/status.h"

namespace snapvol {

std::string VolumeImagePath(const std::string& volume_dir, const std::string& volume_id);
inline std::string CbtPath(const std::string& image_path) { return image_path + ".cbt"; }
// LoadMapPath(image_path) (IMG.load) is declared beside ReadsFromItsSnapshot in the catalog,
// which must know whether a volume still reads from its snapshot.
inline std::string CowPathPrefix(const std::string& image_path) { return image_path + ".cow-"; }
inline std::string CowPath(const std::string& image_path, const std::string& snapshot_id) {
  return CowPathPrefix(image_path) + snapshot_id;
}

// Creates IMG sparse and all zeros, `size` bytes, owner-only, and makes it durable. An
// existing file → kAlreadyExists. A size the file system cannot hold → kNoSpace (the file is
// removed again); other failures → kIoError.
Status CreateVolumeImage(const std::string& image_path, uint64_t size);
// Removes IMG and every file beside it that belongs to it (.cbt, .load, .cow-*); absent files
// are fine.
void RemoveVolumeFiles(const std::string& image_path);

}  // namespace snapvol

// Resource ids in the shapes EC2 uses: snap-/vol-/i-/replacevol- followed by 17 hex digits, and 12-digit
// account ids. Thread-safety: free functions, safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace snapvol {

std::string NewSnapshotId();
std::string NewVolumeId();
std::string NewInstanceId();
std::string NewReplaceRootVolumeTaskId();  // "replacevol-" + 17 hex, as EC2 names them
std::string NewAccountId();
std::string NewHostId();  // "host-" + 17 hex: a snapvold host (docs/multi-host.md part 2)

bool IsSnapshotId(std::string_view s);
bool IsVolumeId(std::string_view s);
bool IsInstanceId(std::string_view s);
bool IsReplaceRootVolumeTaskId(std::string_view s);  // 17 hex only
bool IsAccountId(std::string_view s);
bool IsHostId(std::string_view s);  // 17 hex only
// A device name as an instance sees it: "/dev/" then lower-case letters, digits and '/', 6 to
// 32 characters (/dev/xvda, /dev/sdf).
bool IsDeviceName(std::string_view s);

}  // namespace snapvol

// The action table of the EC2 Query API: every action of every handler file, by name.
#include "api/ec2_context.h"

namespace snapvol::api {

const std::map<std::string_view, const Ec2Action*>& Ec2ActionTable() {
  static const auto* table = [] {
    auto* t = new std::map<std::string_view, const Ec2Action*>;
    for (auto list : {SnapshotActions(), SnapshotLockActions(), SnapshotAttributeActions(), TagActions(),
                      VolumeActions(), VolumeDescribeActions(), InstanceActions(), RestoreRequestActions(),
                      RecycleBinActions(), ReplaceRootVolumeActions()})
      for (const Ec2Action& a : list) t->emplace(a.name, &a);
    return t;
  }();
  return *table;
}

}  // namespace snapvol::api

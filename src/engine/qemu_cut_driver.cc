#include "engine/qemu_cut_driver.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <thread>

#include "core/file_util.h"
#include "volume/cut_sources.h"
#include "volume/nbd_export_source.h"
#include "volume/qmp_client.h"

namespace snapvol {

using nlohmann::json;

namespace {

constexpr char kPrefix[] = "qemu:";
constexpr char kNbdMark[] = "|nbd=";

// QEMU's node names: a letter, then letters, digits, '-', '.', '_'; at most 31 characters.
bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 31 || !std::isalpha(static_cast<unsigned char>(n[0]))) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; });
}

// Everything one snapshot set up in QEMU, so that teardown undoes exactly that.
struct Fleece {
  QemuDisk disk;
  std::string volume_id, snapshot_id;
  std::string overlay_path, nbd_socket;
  // When <scratch>/<snap>.nbd is too long for a unix socket: a 0700 dir in /tmp holding a
  // symlink "d" to the scratch dir, so that nbd_socket is <short_dir>/d/<snap>.nbd (the socket
  // itself still lives in the scratch dir).
  std::string short_dir;
  std::string file_node, overlay_node, job_id, export_id;
  std::string parent_bitmap;  // trusted and frozen by the cut: the changed blocks
  std::string new_bitmap;     // added by the cut: the next snapshot's changed blocks
  bool overlay_file = false, file_node_added = false, overlay_added = false, job_started = false;
  bool server_started = false, exported = false, new_bitmap_added = false;
  std::shared_ptr<NbdExportSource> source;
  std::string record_path;  // <snap>.fleece: the disk's path, flock'ed while the snapshot runs
  UniqueFd lock;
};

Status WaitJobConcluded(QmpClient& qmp, const std::string& id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    ASSIGN_OR_RETURN(json jobs, qmp.Execute("query-jobs"));
    for (const auto& j : jobs) {
      if (j.value("id", "") != id) continue;
      if (j.value("status", "") == "concluded") {
        std::string err = j.value("error", "");
        RETURN_IF_ERROR(qmp.Execute("job-dismiss", {{"id", id}}));
        if (!err.empty()) return Conflict("QEMU job " + id + ": " + err);
        return OkStatus();
      }
    }
    if (std::chrono::steady_clock::now() > deadline)
      return MakeError(ErrorCode::kIoError, "QEMU job " + id + " did not end within " + std::to_string(timeout.count()) + " ms", true);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Waits until job id is gone (cancelled and dismissed by QEMU itself).
Status WaitJobGone(QmpClient& qmp, const std::string& id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    ASSIGN_OR_RETURN(json jobs, qmp.Execute("query-jobs"));
    bool present = std::any_of(jobs.begin(), jobs.end(), [&](const json& j) { return j.value("id", "") == id; });
    if (!present) return OkStatus();
    if (std::chrono::steady_clock::now() > deadline)
      return MakeError(ErrorCode::kIoError, "QEMU job " + id + " did not end within " + std::to_string(timeout.count()) + " ms", true);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<json> FindNode(QmpClient& qmp, const std::string& node) {
  ASSIGN_OR_RETURN(json nodes, qmp.Execute("query-named-block-nodes", {{"flat", true}}));
  for (auto& n : nodes)
    if (n.value("node-name", "") == node) return n;
  return NotFound("QEMU has no block node named " + node + " (see query-named-block-nodes)");
}

uint64_t NodeSize(const json& node) {
  auto it = node.find("image");
  if (it == node.end() || !it->is_object()) return 0;
  auto v = it->find("virtual-size");
  return v != it->end() && v->is_number_unsigned() ? v->get<uint64_t>() : 0;
}

// Removes volume_id's bitmaps from node except keep. A busy one (a QEMU job uses it) is left,
// and said in *errors when busy_is_error; what failed goes to *errors.
void RemoveBitmapsOf(QmpClient& q, const std::string& node, const std::string& volume_id, const std::string& keep,
                     bool busy_is_error, std::vector<std::string>* errors) {
  auto n = FindNode(q, node);
  if (!n) {
    errors->push_back(n.error().message());
    return;
  }
  const std::string mine = QemuBitmapName(volume_id, "");
  for (const auto& b : n->value("dirty-bitmaps", json::array())) {
    std::string name = b.value("name", "");
    if (!name.starts_with(mine) || name == keep) continue;
    if (b.value("busy", false)) {
      if (busy_is_error) errors->push_back("dirty bitmap " + name + " on " + node + " is in use by a QEMU job");
      continue;
    }
    if (auto st = q.Execute("block-dirty-bitmap-remove", {{"node", node}, {"name", name}}); !st)
      errors->push_back(st.error().message());
  }
}

// Undoes in QEMU what f set up, newest first; each step is tried even when an earlier one
// failed; what failed goes to *errors. completed: see Teardown.
void UndoInQemu(QmpClient& q, Fleece& f, bool completed, std::chrono::milliseconds timeout,
                std::vector<std::string>* errors) {
  auto note = [&](const auto& st) {
    if (!st) errors->push_back(st.error().message());
  };
  if (f.exported) note(q.Execute("block-export-del", {{"id", f.export_id}, {"mode", "hard"}}));
  if (f.server_started) note(q.Execute("nbd-server-stop"));
  if (f.job_started) {
    note(q.Execute("block-job-cancel", {{"device", f.job_id}, {"force", true}}));
    note(WaitJobGone(q, f.job_id, timeout));
  }
  if (f.overlay_added) note(q.Execute("blockdev-del", {{"node-name", f.overlay_node}}));
  if (f.file_node_added) note(q.Execute("blockdev-del", {{"node-name", f.file_node}}));
  if (!f.new_bitmap_added) return;
  const std::string& node = f.disk.node;
  if (completed) {
    // The new bitmap is the generation now: the older ones of this volume go (a busy one, used
    // by a concurrent snapshot's job, stays; its own end removes or merges it).
    RemoveBitmapsOf(q, node, f.volume_id, f.new_bitmap, /*busy_is_error=*/false, errors);
  } else if (!f.parent_bitmap.empty()) {
    json actions = json::array(
        {{{"type", "block-dirty-bitmap-merge"},
          {"data", {{"node", node}, {"target", f.parent_bitmap}, {"bitmaps", json::array({f.new_bitmap})}}}},
         {{"type", "block-dirty-bitmap-enable"}, {"data", {{"node", node}, {"name", f.parent_bitmap}}}},
         {{"type", "block-dirty-bitmap-remove"}, {"data", {{"node", node}, {"name", f.new_bitmap}}}}});
    note(q.Execute("transaction", {{"actions", actions}}));
  } else {
    note(q.Execute("block-dirty-bitmap-remove", {{"node", node}, {"name", f.new_bitmap}}));
  }
}

// Removes f's files in the scratch dir, the lock record last.
void RemoveFiles(Fleece& f, std::vector<std::string>* errors) {
  if (f.server_started) ::unlink(f.nbd_socket.c_str());
  if (!f.short_dir.empty()) {
    ::unlink((f.short_dir + "/d").c_str());
    ::rmdir(f.short_dir.c_str());
  }
  if (f.overlay_file && ::unlink(f.overlay_path.c_str()) != 0 && errno != ENOENT)
    errors->push_back(PosixError("remove " + f.overlay_path, errno).message());
  if (f.lock.valid()) {
    ::unlink(f.record_path.c_str());
    f.lock = UniqueFd();
  }
}

// Undoes what f set up. completed: the snapshot completed, so its new bitmap is the next
// generation; otherwise the parent's bitmap takes the new one's writes back and records again.
void Teardown(Fleece& f, bool completed, std::chrono::milliseconds timeout) {
  if (f.source) f.source->Close();
  std::vector<std::string> errors;
  try {
    auto q = QmpClient::Connect(f.disk.qmp_socket, timeout);
    if (q) UndoInQemu(**q, f, completed, timeout, &errors);
    else errors.push_back(q.error().message());
  } catch (const json::exception& e) {
    errors.push_back(std::string("unexpected QMP answer: ") + e.what());
  }
  RemoveFiles(f, &errors);
  for (const auto& e : errors)
    std::cerr << "snapvol: tearing down the fleecing of " << f.disk.node << " for " << f.snapshot_id << ": " << e
              << "\n";
}

// The names one snapshot's fleecing uses, all derived from its snapshot id.
void NameFleece(Fleece& f, const std::string& scratch_dir) {
  f.overlay_path = scratch_dir + "/" + f.snapshot_id + ".qcow2";
  f.record_path = scratch_dir + "/" + f.snapshot_id + ".fleece";
  f.nbd_socket = f.disk.nbd_socket.empty() ? scratch_dir + "/" + f.snapshot_id + ".nbd" : f.disk.nbd_socket;
  f.file_node = "svf-" + f.snapshot_id;
  f.overlay_node = "svo-" + f.snapshot_id;
  f.job_id = "snapvol-fleece-" + f.snapshot_id;
  f.export_id = "snapvol-" + f.snapshot_id;
  f.new_bitmap = QemuBitmapName(f.volume_id, f.snapshot_id);
}

// Undoes the fleecing of snapshots of this disk whose snapvol died before it ended: their lock
// record (<snap>.fleece, flock'ed while the snapshot runs) is no longer held. Their bitmaps are
// left as they are: the generation check does not trust them (frozen or of another snapshot),
// and the next completed snapshot removes them.
void SweepStale(QmpClient& q, const QemuDisk& disk, const std::string& volume_path, const std::string& scratch_dir,
                std::chrono::milliseconds timeout) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(scratch_dir, ec)) {
    if (e.path().extension() != ".fleece") continue;
    UniqueFd fd(::open(e.path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its snapshot still runs
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
    json rec = json::parse(text, nullptr, false);
    if (!rec.is_object() || rec.value("path", "") != volume_path) continue;  // another disk's: its own cut sweeps it
    Fleece f;
    f.disk = disk;
    f.volume_id = rec.value("volume_id", "");
    f.snapshot_id = rec.value("snapshot_id", "");
    if (f.snapshot_id.empty()) continue;
    NameFleece(f, scratch_dir);
    f.overlay_file = f.file_node_added = f.overlay_added = f.job_started = f.exported = true;
    f.short_dir = rec.value("short_dir", "");
    if (!f.short_dir.empty()) f.nbd_socket = f.short_dir + "/d/" + f.snapshot_id + ".nbd";
    f.server_started = disk.nbd_socket.empty() && std::filesystem::exists(f.nbd_socket, ec);
    std::vector<std::string> ignored;  // most of it may never have been set up
    UndoInQemu(q, f, false, timeout, &ignored);
    f.lock = std::move(fd);
    RemoveFiles(f, &ignored);
  }
}

// Writes f's lock record and holds its lock until f is torn down.
Status WriteRecord(Fleece& f, const std::string& volume_path) {
  UniqueFd fd(::open(f.record_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd.valid()) return std::unexpected(PosixError("create " + f.record_path, errno));
  if (::flock(fd.get(), LOCK_EX) != 0) return std::unexpected(PosixError("lock " + f.record_path, errno));
  f.lock = std::move(fd);
  std::string text = json({{"path", volume_path},
                           {"volume_id", f.volume_id},
                           {"snapshot_id", f.snapshot_id},
                           {"short_dir", f.short_dir}})
                         .dump();
  if (::write(f.lock.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return std::unexpected(PosixError("write " + f.record_path, errno));
  return OkStatus();
}

// What one disk's cut does in the transaction.
struct CutActions {
  json bitmaps = json::array();  // start the next bitmap, freeze the parent's
  json backup;                   // start the fleecing
};

// Checks the parent's bitmap and sets up f's overlay; returns the actions of its cut and fills
// *changed_note. On error, what was set up is recorded in f for Teardown.
Result<CutActions> SetUpOverlay(QmpClient& q, Fleece& f, const std::string& parent_id,
                                std::chrono::milliseconds timeout, std::string* changed_note_out) {
  std::string& changed_note = *changed_note_out;
  ASSIGN_OR_RETURN(json node, FindNode(q, f.disk.node));
  const uint64_t size = NodeSize(node);
  if (size == 0) return InvalidArgument("QEMU block node " + f.disk.node + " has no size");

  // Is the parent's bitmap there, and has it recorded every write since the parent's cut?
  if (parent_id.empty()) {
    changed_note = "full snapshot (no parent)";
  } else {
    const std::string want = QemuBitmapName(f.volume_id, parent_id);
    const json* found = nullptr;
    std::string others;
    const json bitmaps = node.value("dirty-bitmaps", json::array());
    for (const auto& b : bitmaps) {
      std::string name = b.value("name", "");
      if (name == want) found = &b;
      else if (name.starts_with(QemuBitmapName(f.volume_id, ""))) others += (others.empty() ? "" : ", ") + name;
    }
    if (!found) {
      changed_note = "full read: no dirty bitmap " + want + " on " + f.disk.node +
                     (others.empty() ? " (lost)" : " (there is " + others + ", another generation)");
    } else if (!found->value("persistent", false)) {
      changed_note = "full read: dirty bitmap " + want + " is not persistent";
    } else if (found->value("inconsistent", false)) {
      changed_note = "full read: dirty bitmap " + want + " is inconsistent (QEMU did not stop cleanly)";
    } else if (!found->value("recording", false)) {
      changed_note = "full read: dirty bitmap " + want + " stopped recording (a cut that never ended)";
    } else if (found->value("busy", false)) {
      changed_note = "full read: dirty bitmap " + want + " is in use by another job";
    } else {
      f.parent_bitmap = want;
    }
  }

  // The overlay: created 0600 by us, formatted by QEMU (which keeps the mode of a file it finds).
  {
    int fd = ::open(f.overlay_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return std::unexpected(PosixError("create overlay " + f.overlay_path, errno));
    ::close(fd);
    f.overlay_file = true;
  }
  const std::string create_file = f.job_id + "-mkfile", create_qcow2 = f.job_id + "-mkqcow2";
  RETURN_IF_ERROR(q.Execute("blockdev-create",
                            {{"job-id", create_file}, {"options", {{"driver", "file"}, {"filename", f.overlay_path}, {"size", 0}}}}));
  RETURN_IF_ERROR(WaitJobConcluded(q, create_file, timeout));
  RETURN_IF_ERROR(q.Execute("blockdev-add", {{"driver", "file"}, {"node-name", f.file_node}, {"filename", f.overlay_path}}));
  f.file_node_added = true;
  RETURN_IF_ERROR(q.Execute("blockdev-create",
                            {{"job-id", create_qcow2}, {"options", {{"driver", "qcow2"}, {"file", f.file_node}, {"size", size}}}}));
  RETURN_IF_ERROR(WaitJobConcluded(q, create_qcow2, timeout));
  RETURN_IF_ERROR(q.Execute("blockdev-add",
                            {{"driver", "qcow2"}, {"node-name", f.overlay_node}, {"file", f.file_node}, {"backing", f.disk.node}}));
  f.overlay_added = true;

  CutActions a;
  a.backup = {{"type", "blockdev-backup"},
              {"data", {{"job-id", f.job_id}, {"device", f.disk.node}, {"target", f.overlay_node}, {"sync", "none"}}}};
  a.bitmaps.push_back({{"type", "block-dirty-bitmap-add"},
                       {"data", {{"node", f.disk.node}, {"name", f.new_bitmap}, {"persistent", true}}}});
  if (!f.parent_bitmap.empty())
    a.bitmaps.push_back({{"type", "block-dirty-bitmap-disable"}, {"data", {{"node", f.disk.node}, {"name", f.parent_bitmap}}}});
  return a;
}

// The cut of every disk in fs at one instant: one transaction freezes each parent's bitmap,
// starts each next one and each fleecing. When QEMU refuses the bitmaps (a node that cannot hold
// persistent bitmaps, not qcow2), the fleecings alone, each disk read in full (said in notes).
Status Transact(QmpClient& q, const std::vector<Fleece*>& fs, const std::vector<CutActions>& acts,
                std::vector<std::string>* notes) {
  json all = json::array(), backups = json::array();
  for (const auto& a : acts) {
    for (const auto& b : a.bitmaps) all.push_back(b);
    all.push_back(a.backup);
    backups.push_back(a.backup);
  }
  if (auto t = q.Execute("transaction", {{"actions", all}}); t) {
    for (Fleece* f : fs) f->new_bitmap_added = f->job_started = true;
    return OkStatus();
  } else {
    auto plain = q.Execute("transaction", {{"actions", backups}});
    if (!plain) return std::unexpected(plain.error());
    for (size_t i = 0; i < fs.size(); ++i) {
      fs[i]->job_started = true;
      fs[i]->parent_bitmap.clear();
      (*notes)[i] = "full read: no dirty bitmap could be started on " + fs[i]->disk.node + " (" + t.error().message() + ")";
    }
    return OkStatus();
  }
}

// Exports f's overlay (cut already) read-only over NBD and opens it; fills p.
Status Export(QmpClient& q, Fleece& f, const std::string& parent_id, uint32_t block_size,
              std::chrono::milliseconds timeout, std::string changed_note, PreparedSource* p) {
  if (f.disk.nbd_socket.empty()) {
    auto started = q.Execute("nbd-server-start", {{"addr", {{"type", "unix"}, {"data", {{"path", f.nbd_socket}}}}}});
    if (!started)
      return std::unexpected(started.error().WithContext(
          "QEMU runs at most one NBD server: when it already runs one, register the volume with --qemu-nbd SOCKET"));
    f.server_started = true;
  }
  json exp = {{"type", "nbd"}, {"id", f.export_id}, {"node-name", f.overlay_node}, {"name", f.export_id}, {"writable", false}};
  if (!f.parent_bitmap.empty()) exp["bitmaps"] = json::array({f.parent_bitmap});
  RETURN_IF_ERROR(q.Execute("block-export-add", exp));
  f.exported = true;

  // Reads have the same deadline as QMP answers: a QEMU that hangs fails the snapshot.
  ASSIGN_OR_RETURN(auto src, NbdExportSource::Open(f.nbd_socket, f.export_id, f.parent_bitmap,
                                                   f.disk.node + " at the cut of " + f.snapshot_id, timeout));
  f.source = std::shared_ptr<NbdExportSource>(std::move(src));
  if (!f.parent_bitmap.empty()) {
    ASSIGN_OR_RETURN(auto bits, f.source->DirtyBlocks(block_size));
    uint64_t changed = static_cast<uint64_t>(std::count(bits.begin(), bits.end(), 1));
    auto shared = std::make_shared<std::vector<uint8_t>>(std::move(bits));
    p->maybe_changed = [shared](uint64_t b) { return b >= shared->size() || (*shared)[b] != 0; };
    changed_note = "dirty bitmap " + f.parent_bitmap + " of " + f.disk.node + " since " + parent_id + ": " +
                   std::to_string(changed) + " of " + std::to_string(shared->size()) + " blocks changed";
  }
  p->source = f.source;
  p->consistency = kConsistencyQemuFleecing;
  p->changed_blocks = changed_note;
  return OkStatus();
}

}  // namespace

Result<QemuDisk> QemuDisk::Make(std::string node, std::string qmp_socket, std::string nbd_socket) {
  if (!ValidNodeName(node))
    return InvalidArgument("QEMU node name '" + node + "': a letter, then letters, digits, '-', '.' or '_', at most 31");
  for (const std::string* s : {&qmp_socket, &nbd_socket}) {
    if (s->empty()) continue;
    if ((*s)[0] != '/') return InvalidArgument("socket path " + *s + " must be absolute");
    if (s->find(kNbdMark) != std::string::npos) return InvalidArgument("socket path " + *s + " may not contain " + kNbdMark);
  }
  if (qmp_socket.empty()) return InvalidArgument("a QEMU disk needs its QMP socket");
  return QemuDisk{std::move(node), std::move(qmp_socket), std::move(nbd_socket)};
}

std::string QemuDisk::Path() const {
  return kPrefix + node + "@" + qmp_socket + (nbd_socket.empty() ? "" : kNbdMark + nbd_socket);
}

std::optional<QemuDisk> QemuDisk::Parse(const std::string& path) {
  if (!path.starts_with(kPrefix)) return std::nullopt;
  size_t at = path.find('@');
  if (at == std::string::npos) return std::nullopt;
  QemuDisk d;
  d.node = path.substr(sizeof(kPrefix) - 1, at - (sizeof(kPrefix) - 1));
  std::string rest = path.substr(at + 1);
  size_t mark = rest.find(kNbdMark);
  d.qmp_socket = rest.substr(0, mark);
  if (mark != std::string::npos) d.nbd_socket = rest.substr(mark + sizeof(kNbdMark) - 1);
  return d;
}

std::string QemuBitmapName(const std::string& volume_id, const std::string& snapshot_id) {
  return "snapvol." + volume_id + "." + snapshot_id;
}

Status RemoveQemuBitmaps(const QemuDisk& disk, const std::string& volume_id, std::chrono::milliseconds timeout) {
  auto q = QmpClient::Connect(disk.qmp_socket, timeout);
  if (!q)
    return MakeError(q.error().code(), "the dirty bitmaps of " + volume_id + " on QEMU node " + disk.node +
                                           " were not removed: " + q.error().message());
  std::vector<std::string> errors;
  try {
    RemoveBitmapsOf(**q, disk.node, volume_id, "", /*busy_is_error=*/true, &errors);
  } catch (const json::exception& e) {
    errors.push_back(std::string("unexpected QMP answer: ") + e.what());
  }
  if (errors.empty()) return OkStatus();
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
  return MakeError(ErrorCode::kIoError, "the dirty bitmaps of " + volume_id + " on QEMU node " + disk.node +
                                            " were not all removed: " + all);
}

Result<uint64_t> QemuDiskSize(const QemuDisk& disk, std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(auto q, QmpClient::Connect(disk.qmp_socket, timeout));
  json node;
  try {
    ASSIGN_OR_RETURN(node, FindNode(*q, disk.node));
  } catch (const json::exception& e) {
    return MakeError(ErrorCode::kIoError, std::string("unexpected QMP answer: ") + e.what());
  }
  uint64_t size = NodeSize(node);
  if (size == 0) return InvalidArgument("QEMU block node " + disk.node + " has no size");
  return size;
}

Result<std::optional<PreparedSource>> QemuCutDriver::Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                                         const std::string& parent_id) {
  ASSIGN_OR_RETURN(auto cuts, CutAll({CutRequest{volume, snapshot_id, parent_id}}));
  return std::move(cuts[0]);
}

Result<std::vector<std::optional<PreparedSource>>> QemuCutDriver::CutAll(const std::vector<CutRequest>& cuts) {
  // The QEMU disks, grouped by the QEMU they belong to (its QMP socket), in the order they come.
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  std::vector<QemuDisk> disks(cuts.size());
  for (size_t i = 0; i < cuts.size(); ++i) {
    auto disk = QemuDisk::Parse(cuts[i].volume.path);
    if (!disk) continue;
    disks[i] = *disk;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& e) { return e.first == disk->qmp_socket; });
    if (g == groups.end()) groups.push_back({disk->qmp_socket, {i}});
    else g->second.push_back(i);
  }
  std::vector<std::optional<PreparedSource>> out(cuts.size());
  for (const auto& [socket, members] : groups) {
    std::vector<std::pair<QemuDisk, const CutRequest*>> group;
    for (size_t i : members) group.push_back({disks[i], &cuts[i]});
    auto made = CutTogether(group);
    if (!made) {
      ReleaseCuts(out);
      return std::unexpected(made.error());
    }
    for (size_t k = 0; k < members.size(); ++k) out[members[k]] = std::move((*made)[k]);
  }
  return out;
}

Result<std::vector<PreparedSource>> QemuCutDriver::CutTogether(
    const std::vector<std::pair<QemuDisk, const CutRequest*>>& group) {
  const QemuDisk& first = group.front().first;
  std::string what = "QEMU disk";
  for (size_t i = 0; i < group.size(); ++i) what += (i ? ", " : (group.size() > 1 ? "s " : " ")) + group[i].first.node;
  what += " (" + first.qmp_socket + ")";
  if (scratch_dir_.empty()) return MakeError(ErrorCode::kUnsupported, what + ": no scratch directory for its overlay");
  if (auto made = MakeDirs(scratch_dir_, 0700); !made) return std::unexpected(made.error());
  ::chmod(scratch_dir_.c_str(), 0700);

  std::vector<std::shared_ptr<Fleece>> fs;
  auto undo = [&](const Error& e) {
    for (auto& f : fs) Teardown(*f, false, timeout_);
    return std::unexpected(e.WithContext(what));
  };
  for (const auto& [disk, cut] : group) {
    auto f = std::make_shared<Fleece>();
    f->disk = disk;
    f->volume_id = cut->volume.volume_id;
    f->snapshot_id = cut->snapshot_id;
    NameFleece(*f, scratch_dir_);
    fs.push_back(f);
    if (f->nbd_socket.size() >= 108) {  // sizeof(sockaddr_un::sun_path)
      if (!disk.nbd_socket.empty())
        return undo(InvalidArgument("the NBD socket path " + f->nbd_socket + " is too long for a unix socket").error());
      char tmpl[] = "/tmp/snapvol-nbd-XXXXXX";
      if (!::mkdtemp(tmpl)) return undo(PosixError("mkdtemp /tmp/snapvol-nbd-", errno));
      if (::symlink(scratch_dir_.c_str(), (std::string(tmpl) + "/d").c_str()) != 0) {
        int err = errno;
        ::rmdir(tmpl);
        return undo(PosixError("symlink to " + scratch_dir_, err));
      }
      f->short_dir = tmpl;
      f->nbd_socket = f->short_dir + "/d/" + f->snapshot_id + ".nbd";
    }
  }

  auto q = QmpClient::Connect(first.qmp_socket, timeout_);
  if (!q) {
    std::vector<std::string> ignored;
    for (auto& f : fs) RemoveFiles(*f, &ignored);  // the short dirs, if any
    return std::unexpected(q.error().WithContext(what));
  }
  std::vector<PreparedSource> out(group.size());
  Status st;
  try {
    std::vector<CutActions> acts;
    std::vector<Fleece*> raw;
    std::vector<std::string> notes(group.size());
    for (size_t i = 0; st && i < group.size(); ++i) {
      const CutRequest& c = *group[i].second;
      SweepStale(**q, group[i].first, c.volume.path, scratch_dir_, timeout_);
      st = WriteRecord(*fs[i], c.volume.path);
      if (!st) break;
      auto a = SetUpOverlay(**q, *fs[i], c.parent_id, timeout_, &notes[i]);
      if (!a) st = std::unexpected(a.error());
      else acts.push_back(std::move(*a));
      raw.push_back(fs[i].get());
    }
    // The instant of the cut, of every disk of this QEMU at once.
    if (st) st = Transact(**q, raw, acts, &notes);
    for (size_t i = 0; st && i < group.size(); ++i)
      st = Export(**q, *fs[i], group[i].second->parent_id, block_size_, timeout_, notes[i], &out[i]);
  } catch (const json::exception& e) {  // an answer not shaped as QEMU documents it
    st = MakeError(ErrorCode::kIoError, std::string("unexpected QMP answer: ") + e.what());
  }
  q->reset();  // the monitor is free for others (libvirt, an operator) while the snapshots read
  if (!st) return undo(st.error());
  const auto timeout = timeout_;
  for (size_t i = 0; i < group.size(); ++i)
    out[i].on_done = [f = fs[i], timeout](bool completed) { Teardown(*f, completed, timeout); };
  return out;
}

}  // namespace snapvol

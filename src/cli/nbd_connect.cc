#include "cli/nbd_connect.h"

#include <iostream>

#include "cli/api_client.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "nbd/nbd_psk.h"

namespace snapvol {
namespace {

struct NbdConnectOptions {
  std::string volume_id, nbd, nbd_socket, key_dir, profile;
};

std::string DefaultKeyDir() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.snapvol/nbd";
}

// Returns the text to print; errors as Status for the caller to report.
Result<std::string> Connect(const NbdConnectOptions& o) {
  if (!IsVolumeId(o.volume_id)) return InvalidArgument("not a volume id: '" + o.volume_id + "' (vol-…)");
  if (o.nbd.empty() == o.nbd_socket.empty())
    return InvalidArgument("say where snapvold serves NBD: --nbd HOST:PORT (its --nbd-listen) or --nbd-socket PATH");
  std::string host, port;
  if (!o.nbd.empty()) {
    auto colon = o.nbd.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == o.nbd.size())
      return InvalidArgument("--nbd must be HOST:PORT, not '" + o.nbd + "'");
    host = o.nbd.substr(0, colon);
    port = o.nbd.substr(colon + 1);
  }
  ASSIGN_OR_RETURN(iam::SigningCredentials creds, LoadCredentials(o.profile));
  const std::string dir = o.key_dir.empty() ? DefaultKeyDir() : o.key_dir;
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  const std::string file = dir + "/keys.psk";  // the name qemu's tls-creds-psk looks for in dir
  std::string line = nbd::PskFileLine(creds.access_key_id, nbd::PskForSecret(creds.secret_access_key));
  RETURN_IF_ERROR(WriteFileAtomic(file, AsBytes(line), 0600));

  const std::string& id = creds.access_key_id;
  // The URI's user is the PSK identity (libnbd's rule; without one it asks getlogin).
  std::string uri = o.nbd.empty()
                        ? "nbds+unix://" + id + "@/" + o.volume_id + "?socket=" + o.nbd_socket + "&tls-psk-file=" + file
                        : "nbds://" + id + "@" + o.nbd + "/" + o.volume_id + "?tls-psk-file=" + file;
  std::string server = o.nbd.empty() ? "server.type=unix,server.path=" + o.nbd_socket
                                     : "server.type=inet,server.host=" + host + ",server.port=" + port;
  std::string out;
  out += "key file: " + file + " (identity " + id + ", readable by you only)\n";
  out += "nbdinfo, nbdcopy, nbdsh, libnbd:\n  '" + uri + "'\n";
  out += "qemu-img, qemu-nbd, qemu-storage-daemon:\n  --object tls-creds-psk,id=tls0,endpoint=client,dir=" + dir +
         ",username=" + id + " --image-opts 'driver=nbd," + server + ",export=" + o.volume_id + ",tls-creds=tls0'\n";
  return out;
}

}  // namespace

void AddNbdCommands(CLI::App& app, std::function<void()>* action, int* exit_code) {
  auto* nbd = app.add_subcommand("nbd", "Reach attached managed volumes over NBD (TLS with a pre-shared key)");
  nbd->require_subcommand(1);
  auto o = std::make_shared<NbdConnectOptions>();
  auto* connect = nbd->add_subcommand(
      "connect", "Write your access key's NBD key file and print the URI and qemu options for a volume");
  connect->add_option("volume_id", o->volume_id, "The attached volume (vol-…)")->required();
  connect->add_option("--nbd", o->nbd, "snapvold's NBD TCP address (its --nbd-listen), HOST:PORT");
  connect->add_option("--nbd-socket", o->nbd_socket, "snapvold's NBD Unix socket (its --nbd-socket)");
  connect->add_option("--key-dir", o->key_dir, "Where to write keys.psk (default ~/.snapvol/nbd, made 0700)");
  connect->add_option("--profile", o->profile, "AWS credentials profile (default: the env keys, else $AWS_PROFILE or default)");
  connect->callback([action, exit_code, o] {
    *action = [exit_code, o] {
      auto text = Connect(*o);
      if (!text) {
        std::cerr << "snapvol: error: " << text.error().message() << "\n";
        *exit_code = 1;
        return;
      }
      std::cout << *text;
    };
  });
}

}  // namespace snapvol

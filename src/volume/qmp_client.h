// A client of QEMU's machine protocol (QMP): JSON lines over a unix socket, as a running VM or
// a qemu-storage-daemon offers it (`-qmp unix:PATH,server=on,wait=off`, `--chardev socket,…
// --monitor`). It negotiates capabilities, sends one command at a time and waits for that
// command's answer (matched by id), skipping the asynchronous events QEMU sends in between.
// Every read has a deadline: a QEMU that hangs fails the call, it never blocks the snapshot.
// Errors: a QMP error answer → kNotFound (DeviceNotFound), kUnsupported (CommandNotFound) or
// kConflict (anything else: QEMU refused in its current state), with QEMU's class and
// description; a socket that closes, or no answer within the deadline → retryable kIoError.
// Thread-safety: one thread at a time (QMP is a conversation).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/status.h"

namespace snapvol {

class QmpClient {
 public:
  // Connects to socket_path, reads QEMU's greeting and sends qmp_capabilities. timeout bounds
  // every later read as well.
  static Result<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path, std::chrono::milliseconds timeout);
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs command with arguments (null: none) and returns its "return" value.
  Result<nlohmann::json> Execute(const std::string& command, const nlohmann::json& arguments = nullptr);
  // QEMU's version as it greeted us ("7.2.22").
  const std::string& version() const { return version_; }

 private:
  QmpClient(std::string path, UniqueFd fd, std::chrono::milliseconds timeout)
      : path_(std::move(path)), fd_(std::move(fd)), timeout_(timeout) {}
  // The next JSON message (events included); kIoError on a closed socket or the deadline.
  Result<nlohmann::json> ReadMessage(std::chrono::steady_clock::time_point deadline);
  Status WriteAll(const std::string& data);

  std::string path_;
  UniqueFd fd_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;  // bytes read past the last full line
  std::string version_;
  uint64_t next_id_ = 1;
};

}  // namespace snapvol

// What the `snapvol` commands share: the global options (data dir, output format), the error a
// command throws for RunCli to print as one line (exit 1), unwrapping a Result into a value or
// that error, opening the data dir, and printing tags and tables.
// Thread-safety: call from one thread (the CLI's).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "cli/data_dir.h"
#include "core/status.h"

namespace snapvol::cli {

// --data-dir (or $SNAPVOL_DATA_DIR) and --output (table or json).
struct Globals {
  std::string data_dir;
  std::string output = "table";
};

// Thrown by a command; RunCli prints "snapvol: error: MESSAGE" and exits 1.
struct Failure {
  std::string message;
};

// Unwraps a Result or throws a Failure with its message (after context, when given).
template <typename T>
T Must(Result<T> r, const std::string& context = "") {
  if (!r) throw Failure{context.empty() ? r.error().message() : context + ": " + r.error().message()};
  return std::move(*r);
}
inline void Must(Status s, const std::string& context = "") {
  if (!s) throw Failure{context.empty() ? s.error().message() : context + ": " + s.error().message()};
}

// The data dir the globals name; a Failure when none is.
const std::string& RequireDataDir(const Globals& g);
std::unique_ptr<DataDir> OpenDir(const Globals& g);

nlohmann::json TagsJson(const std::vector<Tag>& tags);  // [{"Key", "Value"}, …]
std::string TagsText(const std::vector<Tag>& tags);      // k=v,k2=v2
Result<Tag> ParseTag(const std::string& s);             // KEY=VALUE; no aws: key

// Columns padded to their widest cell, two spaces apart, header first, on stdout.
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                std::ostream& out = std::cout);

}  // namespace snapvol::cli

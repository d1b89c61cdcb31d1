#include "cli/cli_support.h"

#include <algorithm>
#include <iostream>

#include "core/system_tags.h"

namespace snapvol::cli {

const std::string& RequireDataDir(const Globals& g) {
  if (g.data_dir.empty()) throw Failure{"no data dir: pass --data-dir DIR or set SNAPVOL_DATA_DIR"};
  return g.data_dir;
}

std::unique_ptr<DataDir> OpenDir(const Globals& g) { return Must(DataDir::Open(RequireDataDir(g))); }

nlohmann::json TagsJson(const std::vector<Tag>& tags) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& t : tags) a.push_back({{"Key", t.key}, {"Value", t.value}});
  return a;
}

std::string TagsText(const std::vector<Tag>& tags) {
  std::string out;
  for (const auto& t : tags) out += (out.empty() ? "" : ",") + t.key + "=" + t.value;
  return out;
}

Result<Tag> ParseTag(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument("tag '" + s + "' is not KEY=VALUE");
  if (HasReservedTagPrefix(s.substr(0, eq)))
    return InvalidArgument("tag '" + s + "': keys starting with aws: are reserved for the system's own tags");
  return Tag{s.substr(0, eq), s.substr(eq + 1)};
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                std::ostream& out) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    out << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

}  // namespace snapvol::cli

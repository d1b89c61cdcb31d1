#include "daemon/settings_file.h"

#include <limits.h>
#include <unistd.h>

#include <charconv>
#include <sstream>

#include "core/file_util.h"

namespace snapvol {
namespace {

// Comment lines of at most ~92 columns: the help texts are single long sentences.
void WriteComment(std::ostringstream& out, const std::string& text) {
  std::istringstream words(text);
  std::string word, line;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > 90) {
      out << "# " << line << "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out << "# " << line << "\n";
}

bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  double d = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && end == s.data() + s.size();
}

// A TOML value CLI11's reader gives back as `s`: numbers and booleans bare, the rest quoted.
std::string TomlValue(const std::string& s) {
  if (IsNumber(s) || s == "true" || s == "false") return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

// A list option's value as a TOML array: CLI11 shows it as "[a,b]" (or "a" for one item). An
// empty list is written "" (CLI11 refuses [] for an option that takes values; the options
// that take lists read "" as none).
std::string TomlList(std::string s) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  if (s.empty()) return "\"\"";
  std::string out = "[";
  size_t start = 0;
  while (!s.empty() && start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (out.size() > 1) out += ", ";
    out += TomlValue(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out + "]";
}

}  // namespace

std::string CommentedSettings(CLI::App& app, const std::string& header) {
  std::ostringstream out;
  WriteComment(out, app.get_description());
  std::istringstream lines(header);
  for (std::string line; std::getline(lines, line);) out << (line.empty() ? "#" : "# " + line) << "\n";
  for (CLI::Option* opt : app.get_options()) {
    if (!opt->get_configurable() || opt == app.get_help_ptr() || opt == app.get_config_ptr()) continue;
    std::string name = opt->get_single_name();
    if (name.empty() || opt->get_lnames().empty()) continue;
    std::string value;
    if (opt->get_type_size_max() == 0) {  // a flag: on only when given
      value = opt->count() > 0 && opt->as<bool>() ? "true" : "false";
    } else {
      opt->capture_default_str();  // the variable's value now: its default unless it was set
      value = opt->get_expected_max() > 1 ? TomlList(opt->get_default_str()) : TomlValue(opt->get_default_str());
    }
    out << "\n";
    WriteComment(out, opt->get_description());
    out << "#" << name << " = " << value << "\n";
  }
  return out.str();
}

std::string DefaultConsoleDir(const std::string& build_default) {
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return build_default;
  std::string prefix(exe, static_cast<size_t>(n));  // /usr/bin/snapvold → /usr
  for (int i = 0; i < 2 && prefix.rfind('/') != std::string::npos; ++i) prefix.resize(prefix.rfind('/'));
  std::string installed = prefix + "/share/snapvol/console";
  return PathExists(installed + "/index.html") ? installed : build_default;
}

}  // namespace snapvol

// What snapvold writes for --print-config: every setting of its command line as a TOML file
// that --config reads back, each one commented out under its help text, so an installed
// /etc/snapvol/snapvold.toml is generated from the binary and lists every flag it has.
// Thread-safety: pure functions of their arguments.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace snapvol {

// The settings of `app` (every configurable option with a long name, except --config and the
// help flag), in the order they were added: for each, its description as `# ` comment lines
// (wrapped), then `#name = value` with the value it has now (the default unless the command
// line or --config set it). Empty strings are written as "" (which every such setting reads as
// "not set"). `header` is written first, as comment lines. REQUIRES: app has been parsed.
std::string CommentedSettings(CLI::App& app, const std::string& header);

// The console's static files for a snapvold that was not given --console-dir: an installed
// one beside the binary (<exe dir>/../share/snapvol/console) when it has an index.html, else
// `build_default` (the build tree's console/dist, fixed at compile time).
std::string DefaultConsoleDir(const std::string& build_default);

}  // namespace snapvol

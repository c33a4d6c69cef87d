// Writing an output file so that it is either complete or absent, never half-written:
//
//   write_file_atomically(o.json, "--json", [&](std::ostream& out) { out << j.dump(2); });
//
// The bytes go to a fresh temporary file in the same folder (mkstemp: "<name>.tmp.XXXXXX", a name
// nobody else uses, so a file the user already has, <out>.tmp included, is never touched), which
// is flushed and then renamed over `path` (atomic on POSIX). On any failure the temporary file is
// removed and InvalidArgument is thrown naming `what` (the flag that chose the path, e.g.
// "--json") and the path as given: a missing folder, a folder that is not writable, a path that
// is a directory, a full disk.
//
// The checks a command makes before it does any work (a run, a plot, a table printed), so that a
// bad path is reported at once and nothing is half done:
//
//   require_writable_path(o.json, "--json");            // folder exists, path is not a folder
//   require_distinct_paths({{"--out", o.out}, {"--json", o.json}});   // one file, one flag
//   std::ifstream f = open_input_file(o.roof, "--roof");  // exists, is a file, can be read
#pragma once

#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace day18 {

void write_file_atomically(const std::string& path, std::string_view what,
                           const std::function<void(std::ostream&)>& write);

// Throws InvalidArgument naming `what` unless `path` could be written by write_file_atomically:
// not empty, its folder exists, it is not a folder itself. The same words as the write's.
void require_writable_path(const std::string& path, std::string_view what);

// Throws InvalidArgument when two of the (flag, path) pairs name the same file (paths compared
// after making them absolute and normal; empty paths are skipped): "--records: 't.json' is
// also the --out file; give another name". For outputs that would overwrite each other, and for an
// output that would overwrite an input.
void require_distinct_paths(
    const std::vector<std::pair<std::string_view, std::string>>& flag_paths);

// Why `path` cannot be read as an input file, in words ("no such file", "it is a folder, not a
// file", "Permission denied"), or "" when it can.
std::string unreadable_reason(const std::string& path);

// `path` opened for reading (binary); otherwise InvalidArgument "<what> <path>: cannot read it:
// <reason>", e.g. "--roof out/: cannot read it: it is a folder, not a file".
std::ifstream open_input_file(const std::string& path, std::string_view what);

}  // namespace day18

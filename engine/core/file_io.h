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
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace day18 {

void write_file_atomically(const std::string& path, std::string_view what,
                           const std::function<void(std::ostream&)>& write);

}  // namespace day18

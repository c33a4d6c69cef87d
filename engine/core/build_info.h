// Where a binary came from: stamped into benchmark JSON, reference results and traces.
#pragma once

namespace day18 {
// Short git commit of the tree the binary was built from ("unknown" outside a git checkout),
// with "-dirty" when it had uncommitted changes. Refreshed at every build, not only at configure.
const char* git_commit();
// The project's version (CMakeLists.txt: project(day18 VERSION ...)).
const char* version();
}  // namespace day18

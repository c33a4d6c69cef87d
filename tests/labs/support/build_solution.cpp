// Linked into test_labNN_solution: the same tests run the engine's code (the reference solution).
#include "tests/labs/support/lab.h"
const char* day18::lab::build_kind() { return "solution"; }

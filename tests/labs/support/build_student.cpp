// Linked into test_labNN_student: the tests run the learner's code (labs/NN-name/src).
#include "tests/labs/support/lab.h"
const char* day18::lab::build_kind() { return "student"; }

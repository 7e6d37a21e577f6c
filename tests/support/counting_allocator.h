// Counts every heap allocation of the test binary that links
// support/counting_allocator.cc, which replaces the global operator new and
// delete (all forms). Link it into its own binary: the replacement is global.
#pragma once

namespace cxpulse::testing {

// Allocations so far, from any thread.
long Allocations();

}  // namespace cxpulse::testing

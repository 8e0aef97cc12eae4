// Which address ranges are mmap'd files, for a SIGBUS handler.
//
// A file mapped with mmap and then truncated by someone else raises SIGBUS when a page past
// its new end is touched, at any weight access, in any thread. The safetensors reader
// registers each mapping here; the command line's SIGBUS handler asks mapped_file_at() whether
// the faulting address is in one, so it can say which file changed and exit cleanly instead of
// dying with "Bus error" (tools/cli/process_setup.cpp).
#pragma once

#include <cstddef>
#include <string>

namespace longvq {

// Registers [begin, begin + size) as a mapping of `path`; returns a slot for unregister_mapping
// (-1 when the table is full: then that mapping is just not reported by name).
int register_mapping(const void* begin, size_t size, const std::string& path) noexcept;
void unregister_mapping(int slot) noexcept;

// The path of the registered mapping that holds `address`, or nullptr. Async-signal-safe.
const char* mapped_file_at(const void* address) noexcept;

}  // namespace longvq

// CRC-32 (IEEE 802.3, the polynomial and bit order of zlib.crc32, gzip and PNG), table-driven.
// State files carry it over their data area so that a flipped bit is refused on load
// (docs/file-formats.md §3); Python computes the same number with zlib.crc32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longvq {

// The CRC of `size` bytes, continuing from `crc` (0 to start): crc32(b, crc32(a)) == crc32(a + b).
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

// 8 lowercase hex digits, as the state files store it ("cbf43926" for "123456789").
std::string crc32_hex(uint32_t crc);

}  // namespace longvq

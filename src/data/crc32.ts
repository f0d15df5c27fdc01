// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for shard block and header checksums, and the
// table-driven reflected CRC-32 it is built from (also CRC-32C for TensorBoard event files).

/** A reflected CRC-32 for a polynomial in reversed form (0xedb88320 IEEE, 0x82f63b78 Castagnoli). */
export function reflectedCrc32(poly: number): (bytes: Uint8Array) => number {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return (bytes) => {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
}

/** CRC-32 of bytes (unsigned 32-bit result). */
export const crc32 = reflectedCrc32(0xedb88320);

// CRC-32C (Castagnoli), and the "masked" form TFRecord files store, for TensorBoard event files.
import { reflectedCrc32 } from '../data/crc32.js';

/** CRC-32C of bytes (unsigned 32-bit result). */
export const crc32c = reflectedCrc32(0x82f63b78);

/** TFRecord's masked CRC-32C: rotated right by 15 bits plus a constant (so CRCs of CRCs stay strong). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

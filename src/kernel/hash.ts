// Hashes and random bytes without loading node:crypto at start: it costs ~3 ms, more
// than most of a verb's own work. Hashes load it when first needed (only ipMasq needs
// them); random bytes come from /dev/urandom.
import { closeSync, openSync, readSync } from 'node:fs';

/** sha512 of `text`, as hex. */
export function sha512Hex(text: string): string {
  const { createHash } = process.getBuiltinModule('node:crypto');
  return createHash('sha512').update(text).digest('hex');
}

export function randomBytes(n: number): Buffer {
  const buf = Buffer.alloc(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf, 0, n, null);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** A random unicast, locally administered MAC, as the kernel makes for new links. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// Netlink messages as bytes: a header, a fixed family header (ifinfomsg, ifaddrmsg, rtmsg)
// and type-length-value attributes, nested where the kernel nests them. Host byte order
// (netlink is host-endian; every machine we run on is little-endian), 4-byte alignment.
import { ipFromBytes, type IP } from '../../net/ip.ts';

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** In a dump's message: the kernel's tables changed during the dump, which may have missed entries. */
export const NLM_F_DUMP_INTR = 0x10;
/** In an error message: extended-ack attributes follow the (capped) request. */
const NLM_F_ACK_TLVS = 0x200;
/** In an error message: the request is echoed as its header only (NETLINK_CAP_ACK). */
const NLM_F_CAPPED = 0x100;
const NLMSGERR_ATTR_MSG = 1;
const NLA_F_NESTED = 0x8000;

const align = (n: number) => (n + 3) & ~3;

/**
 * An attribute's value: bytes, a string (NUL-terminated), an integer, nested attributes,
 * or a fixed header followed by attributes (a veth's peer: an ifinfomsg and its own).
 */
export type AttrValue = Uint8Array | string | { u8: number } | { u16: number } | { u32: number } | Attr[] | { header: Uint8Array; attrs: Attr[] };
export type Attr = [type: number, value: AttrValue];

/**
 * Builds a message in one buffer with plain byte writes: this code runs cold, in V8's
 * interpreter, where every Buffer.alloc, write method and concat costs (measured: ~0.3 ms
 * per ADD with a buffer per attribute).
 */
class Writer {
  private static scratch = Buffer.allocUnsafe(16 * 1024);
  readonly buf = Writer.scratch;
  off = 0;

  u16(at: number, v: number): void {
    this.buf[at] = v & 0xff;
    this.buf[at + 1] = (v >>> 8) & 0xff;
  }

  u32(at: number, v: number): void {
    this.u16(at, v & 0xffff);
    this.u16(at + 2, (v >>> 16) & 0xffff);
  }

  bytes(b: Uint8Array): void {
    if (this.off + b.length > this.buf.length) throw new RangeError('netlink message too large');
    this.buf.set(b, this.off);
    this.off += b.length;
  }

  pad(): void {
    while (this.off & 3) this.buf[this.off++] = 0;
  }

  attrs(attrs: Attr[]): void {
    for (const [type, value] of attrs) {
      const at = this.off;
      this.off += 4;
      let nested = false;
      if (typeof value === 'string') {
        // Names are bytes to the kernel: UTF-8 (any but ASCII is rare: a byte loop then).
        const from = this.off;
        for (let i = 0; i < value.length; i++) {
          const c = value.charCodeAt(i);
          if (c > 0x7f) {
            this.off = from;
            this.bytes(Buffer.from(value, 'utf8'));
            break;
          }
          this.buf[this.off++] = c;
        }
        this.buf[this.off++] = 0;
      } else if (value instanceof Uint8Array) {
        this.bytes(value);
      } else if (Array.isArray(value)) {
        nested = true;
        this.attrs(value);
      } else if ('header' in value) {
        this.bytes(value.header);
        this.pad();
        this.attrs(value.attrs);
      } else if ('u8' in value) {
        this.buf[this.off++] = value.u8 & 0xff;
      } else if ('u16' in value) {
        this.u16(this.off, value.u16);
        this.off += 2;
      } else {
        this.u32(this.off, value.u32 >>> 0);
        this.off += 4;
      }
      this.u16(at, this.off - at);
      this.u16(at + 2, nested ? type | NLA_F_NESTED : type);
      this.pad();
    }
  }
}

let lastSeq = Math.floor(Date.now() / 1000) & 0xffff;

/** One request: header (length and sequence number filled in) + family header + attributes. */
export function encodeMessage(type: number, flags: number, header: Uint8Array, attrs: Attr[] = []): Buffer {
  const w = new Writer();
  w.off = 16;
  w.bytes(header);
  w.pad();
  w.attrs(attrs);
  w.u32(0, w.off);
  w.u16(4, type);
  // Every request must be ended by the kernel (an ack, or the end of a dump): the addon
  // reads until one of those comes.
  const dump = (type & 3) === 2 && (flags & NLM_F_DUMP) === NLM_F_DUMP;
  w.u16(6, flags | NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK));
  w.u32(8, ++lastSeq >>> 0);
  w.u32(12, 0);
  return Buffer.from(w.buf.subarray(0, w.off)); // a copy: the scratch buffer is reused
}

export interface Message {
  type: number;
  flags: number;
  /** The payload after the 16-byte header. */
  data: Buffer;
}

export function decodeMessages(buf: Buffer): Message[] {
  const out: Message[] = [];
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = le32(buf, off);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: le16(buf, off + 4), flags: le16(buf, off + 6), data: buf.subarray(off + 16, off + len) });
    off += align(len);
  }
  return out;
}

/** Little-endian integers by plain byte reads (Buffer's read methods cost when cold). */
export const le16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
export const le32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x1000000;

/**
 * Attributes by type (the last one wins for repeated types: none we read repeat). Only
 * where each one is gets noted, and values are read in place: a link carries some fifty
 * attributes and we read five, and a Buffer view per attribute is the dearest part of
 * decoding when the code runs cold.
 */
export class Attrs {
  /** Offset of each attribute's header by type (types are small numbers). */
  private readonly at: number[] = [];

  private readonly buf: Buffer;

  constructor(buf: Buffer, from = 0, end = buf.length) {
    this.buf = buf;
    for (let off = from; off + 4 <= end; ) {
      const len = le16(buf, off);
      if (len < 4 || off + len > end) break;
      this.at[le16(buf, off + 2) & ~NLA_F_NESTED] = off;
      off += (len + 3) & ~3;
    }
  }

  /** Length of the value of `type`, or -1 when absent. */
  private size(type: number): number {
    const off = this.at[type];
    return off === undefined ? -1 : le16(this.buf, off) - 4;
  }

  get(type: number): Buffer | undefined {
    const off = this.at[type];
    return off === undefined ? undefined : this.buf.subarray(off + 4, off + le16(this.buf, off));
  }

  u8(type: number): number | undefined {
    return this.size(type) < 1 ? undefined : this.buf[this.at[type]! + 4];
  }

  u16(type: number): number | undefined {
    return this.size(type) < 2 ? undefined : le16(this.buf, this.at[type]! + 4);
  }

  /** A 16-bit value in network byte order (ports). */
  be16(type: number): number | undefined {
    if (this.size(type) < 2) return undefined;
    const at = this.at[type]! + 4;
    return (this.buf[at]! << 8) | this.buf[at + 1]!;
  }

  u32(type: number): number | undefined {
    return this.size(type) < 4 ? undefined : le32(this.buf, this.at[type]! + 4);
  }

  /** A signed 32-bit value (netns ids: -1 when none). */
  s32(type: number): number | undefined {
    const v = this.u32(type);
    return v === undefined ? undefined : v | 0;
  }

  has(type: number): boolean {
    return this.at[type] !== undefined;
  }

  /** A NUL-terminated string (names: short, most often ASCII, else UTF-8). */
  str(type: number): string | undefined {
    const n = this.size(type);
    if (n < 0) return undefined;
    const start = this.at[type]! + 4;
    let out = '';
    for (let i = start; i < start + n && this.buf[i] !== 0; i++) {
      if (this.buf[i]! > 0x7f) {
        let end = i;
        while (end < start + n && this.buf[end] !== 0) end++;
        return this.buf.toString('utf8', start, end);
      }
      out += String.fromCharCode(this.buf[i]!);
    }
    return out;
  }

  /** The value's bytes as colon-separated hex (a MAC address). */
  hex(type: number): string | undefined {
    const n = this.size(type);
    if (n < 0) return undefined;
    const start = this.at[type]! + 4;
    let out = '';
    for (let i = start; i < start + n; i++) out += `${i === start ? '' : ':'}${this.buf[i]! < 16 ? '0' : ''}${this.buf[i]!.toString(16)}`;
    return out;
  }

  /** An address attribute (4 or 16 bytes). */
  ip(type: number): IP | undefined {
    const b = this.get(type);
    return b ? ipFromBytes(b) : undefined;
  }

  /** The attributes nested in `type`, read in place. */
  nested(type: number): Attrs | undefined {
    const off = this.at[type];
    return off === undefined ? undefined : new Attrs(this.buf, off + 4, off + le16(this.buf, off));
  }
}

/**
 * The outcome an NLMSG_ERROR carries: 0 for an ack, else a positive errno, with the
 * kernel's own explanation when it gave one (extended ack).
 */
export function decodeError(m: Message): { errno: number; message?: string } {
  const errno = -m.data.readInt32LE(0);
  if (errno === 0 || !(m.flags & NLM_F_ACK_TLVS)) return { errno };
  // The request follows, capped to its header (NETLINK_CAP_ACK): skip it.
  const reqLen = m.data.length >= 8 ? m.data.readUInt32LE(4) : 0;
  const tlvs = new Attrs(m.data, 4 + (m.flags & NLM_F_CAPPED ? 16 : align(reqLen)));
  return { errno, message: tlvs.str(NLMSGERR_ATTR_MSG) };
}

/**
 * The outcome an NLMSG_DONE carries: a dump that failed on the way (an invalid filter, a
 * namespace id that names nothing) ends with its errno there, and the kernel's explanation.
 */
export function decodeDone(m: Message): { errno: number; message?: string } {
  if (m.data.length < 4) return { errno: 0 };
  const errno = -m.data.readInt32LE(0);
  if (errno <= 0 || !(m.flags & NLM_F_ACK_TLVS)) return { errno: Math.max(errno, 0) };
  return { errno, message: new Attrs(m.data, 4).str(NLMSGERR_ATTR_MSG) };
}

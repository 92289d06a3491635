// Netlink messages as bytes: a header, a fixed family header (ifinfomsg, ifaddrmsg, rtmsg)
// and type-length-value attributes, nested where the kernel nests them. Host byte order
// (netlink is host-endian; every machine we run on is little-endian), 4-byte alignment.

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** In an error message: extended-ack attributes follow the (capped) request. */
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
export const NLA_F_NESTED = 0x8000;

const align = (n: number) => (n + 3) & ~3;

/** An attribute's value: bytes, a string (NUL-terminated), a u32, or nested attributes. */
export type AttrValue = Uint8Array | string | { u8: number } | { u16: number } | { u32: number } | Attr[];
export type Attr = [type: number, value: AttrValue];

function attrBytes(value: AttrValue): Buffer {
  if (typeof value === 'string') return Buffer.from(`${value}\0`);
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return encodeAttrs(value);
  const b = Buffer.alloc('u8' in value ? 1 : 'u16' in value ? 2 : 4);
  if ('u8' in value) b.writeUInt8(value.u8);
  else if ('u16' in value) b.writeUInt16LE(value.u16);
  else b.writeUInt32LE(value.u32 >>> 0);
  return b;
}

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of attrs) {
    const body = attrBytes(value);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + body.length, 0);
    head.writeUInt16LE(Array.isArray(value) ? type | NLA_F_NESTED : type, 2);
    parts.push(head, body, Buffer.alloc(align(body.length) - body.length));
  }
  return Buffer.concat(parts);
}

let lastSeq = Math.floor(Date.now() / 1000) & 0xffff;

/** One request: header (length and sequence number filled in) + family header + attributes. */
export function encodeMessage(type: number, flags: number, header: Buffer, attrs: Attr[] = []): Buffer {
  const body = Buffer.concat([header, Buffer.alloc(align(header.length) - header.length), encodeAttrs(attrs)]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  h.writeUInt32LE(++lastSeq >>> 0, 8);
  h.writeUInt32LE(0, 12);
  return Buffer.concat([h, body]);
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
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), data: buf.subarray(off + 16, off + len) });
    off += align(len);
  }
  return out;
}

/**
 * Attributes by type (the last one wins for repeated types: none we read repeat). Only
 * where each one is gets noted: a link carries some fifty attributes and we read five, and
 * a Buffer view per attribute is the dearest part of decoding.
 */
export class Attrs {
  /** Offset of each attribute's header by type (types are small numbers). */
  private readonly at: number[] = [];

  constructor(
    private readonly buf: Buffer,
    from = 0,
  ) {
    // Plain byte reads: this runs cold, in the interpreter, where Buffer's read methods cost.
    const end = buf.length;
    for (let off = from; off + 4 <= end; ) {
      const len = buf[off]! | (buf[off + 1]! << 8);
      if (len < 4 || off + len > end) break;
      this.at[(buf[off + 2]! | (buf[off + 3]! << 8)) & ~NLA_F_NESTED] = off;
      off += (len + 3) & ~3;
    }
  }

  get(type: number): Buffer | undefined {
    const off = this.at[type];
    return off === undefined ? undefined : this.buf.subarray(off + 4, off + (this.buf[off]! | (this.buf[off + 1]! << 8)));
  }

  /** A u32 attribute without making a view of it. */
  u32(type: number): number | undefined {
    const off = this.at[type];
    return off === undefined || (this.buf[off]! | (this.buf[off + 1]! << 8)) < 8 ? undefined : this.buf.readUInt32LE(off + 4);
  }
}

export function decodeAttrs(buf: Buffer, from = 0): Attrs {
  return new Attrs(buf, from);
}

/** A NUL-terminated string attribute (a plain loop: Buffer#indexOf costs ~0.1 ms per first call). */
export function str(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  let end = 0;
  while (end < b.length && b[end] !== 0) end++;
  return b.toString('latin1', 0, end);
}
export const u8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);

/**
 * The outcome an NLMSG_ERROR carries: 0 for an ack, else a positive errno, with the
 * kernel's own explanation when it gave one (extended ack).
 */
export function decodeError(m: Message): { errno: number; message?: string } {
  const errno = -m.data.readInt32LE(0);
  if (errno === 0 || !(m.flags & NLM_F_ACK_TLVS)) return { errno };
  // The request follows, capped to its header (NETLINK_CAP_ACK): skip it.
  const reqLen = m.data.length >= 8 ? m.data.readUInt32LE(4) : 0;
  const tlvs = decodeAttrs(m.data, 4 + (m.flags & 0x100 ? 16 : align(reqLen)));
  return { errno, message: str(tlvs.get(NLMSGERR_ATTR_MSG)) };
}

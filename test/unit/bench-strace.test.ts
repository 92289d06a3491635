// The benchmark's reading of an strace log (scripts/bench/strace.ts): the
// one RTM_DELLINK request of a DEL and its time, also when another thread's traced call
// split it in the log.
import { describe, expect, it } from 'vitest';
import { delLinkMs } from '../../scripts/bench/strace.ts';

describe('delLinkMs', () => {
  it('times the request strace could not name (a socket in another namespace: type 0x11)', () => {
    const log = [
      '19503 sendto(9, [{nlmsg_len=52, nlmsg_type=0x12 /* NLMSG_??? */, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK}, "..."], 52, 0, NULL, 0) = 52 <0.000120>',
      '19503 sendto(9, [{nlmsg_len=32, nlmsg_type=0x11 /* NLMSG_??? */, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK}, "..."], 32, 0, NULL, 0) = 32 <0.017250>',
      '19503 +++ exited with 0 +++',
    ].join('\n');
    expect(delLinkMs(log)).toBeCloseTo(17.25, 6);
  });

  it('times a named request, and one split by another thread into unfinished and resumed', () => {
    expect(delLinkMs('5 sendmsg(3, {msg_iov=[{iov_base=[{nlmsg_type=RTM_DELLINK}]}]}, 0) = 32 <0.020000>')).toBeCloseTo(20, 6);
    const split = [
      '7 sendto(9, [{nlmsg_type=0x11 /* NLMSG_??? */}], 32, 0, NULL, 0 <unfinished ...>',
      '8 sendto(9, [{nlmsg_type=0x12 /* NLMSG_??? */}], 32, 0, NULL, 0) = 32 <0.000100>',
      '8 <... sendto resumed>) = 32 <0.000300>',
      '7 <... sendto resumed>) = 32 <0.019000>',
    ].join('\n');
    expect(delLinkMs(split)).toBeCloseTo(19, 6);
  });

  it('refuses a log without exactly one', () => {
    expect(() => delLinkMs('1 sendto(3, [{nlmsg_type=0x12}], 32, 0, NULL, 0) = 32 <0.0001>')).toThrow(/found 0/);
    const two = '1 sendto(3, [{nlmsg_type=0x11}]) = 32 <0.01>\n1 sendto(3, [{nlmsg_type=0x11}]) = 32 <0.02>';
    expect(() => delLinkMs(two)).toThrow(/found 2/);
  });
});

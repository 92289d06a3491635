// The rules that decide whether a lease's attachment is gone (src/ipam/liveness.ts), on
// evidence made up here: the kernel side is the system test's (host-local-reclaim).
import { describe, expect, it } from 'vitest';
import { GRACE_MS, judge, type Evidence } from '../../src/ipam/liveness.ts';

const now = Date.UTC(2026, 0, 10, 12, 0, 0);
const boot = now - 3600_000; // booted an hour ago
const owner = { id: 'c1', ifname: 'eth0' };
const node = (addrs: string[], doubts: string[] = []) => ({ addresses: new Set(addrs), namespaces: 3, doubts });
const ev = (n: Evidence['node']): Evidence => ({ nowMs: now, bootMs: boot, node: n, graceMs: GRACE_MS });

describe('judging a lease', () => {
  it('keeps a lease whose address is on a pod, however old, even written "before this boot" (a clock stepped forward)', () => {
    expect(judge('10.0.0.2', owner, now - 600_000, ev(node(['10.0.0.2']))).state).toBe('live');
    expect(judge('10.0.0.2', owner, boot - 86_400_000, ev(node(['10.0.0.2']))).state).toBe('live');
  });

  it('releases a lease written before this boot, even when the node cannot be read or is not evidence', () => {
    expect(judge('10.0.0.2', owner, boot - 86_400_000, ev(node([], ['namespace 4: EPERM']))).state).toBe('dead');
    const v = judge('10.0.0.2', owner, boot - 86_400_000, ev({ unusable: 'macvlan' }));
    expect(v.state).toBe('dead');
    expect(v.why).toMatch(/before this boot/);
    // Within the grace period around the boot time: not proof.
    expect(judge('10.0.0.2', owner, boot - 1000, ev({ unusable: 'macvlan' })).state).toBe('unknown');
  });

  it('releases an old lease whose address is on no pod when the whole node was read', () => {
    const v = judge('10.0.0.3', owner, now - GRACE_MS - 1, ev(node(['10.0.0.2'])));
    expect(v.state).toBe('dead');
    expect(v.why).toMatch(/on no pod/);
  });

  it('keeps a fresh lease without an address (an ADD in flight), and one written in the future', () => {
    const v = judge('10.0.0.3', owner, now - GRACE_MS + 1000, ev(node([])));
    expect(v.state).toBe('unknown');
    expect(v.why).toMatch(/in flight/);
    expect(judge('10.0.0.3', owner, now + 3600_000, ev(node([]))).state).toBe('unknown');
  });

  it('keeps a lease when any namespace could not be read, or when the main plugin is not on veths', () => {
    expect(judge('10.0.0.3', owner, now - 600_000, ev(node([], ['namespace 2: EINVAL']))).state).toBe('unknown');
    expect(judge('10.0.0.3', owner, now - 600_000, ev({ unusable: 'pods of main plugin "macvlan"…' })).state).toBe('unknown');
  });

  it('judges a file that holds no lease (empty, torn) by its address alike', () => {
    const v = judge('10.0.0.4', undefined, now - 600_000, ev(node([])));
    expect(v).toMatchObject({ name: '10.0.0.4', state: 'dead' });
    expect(v.owner).toBeUndefined();
  });
});

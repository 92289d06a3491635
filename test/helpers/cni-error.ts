// The CNI code and message of what `fn` throws; fails the test if it throws anything else,
// or nothing.
import { expect } from 'vitest';
import { CniError } from '../../src/cni/errors.ts';

export function cniErrorOf(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return { code: (err as CniError).code, msg: (err as CniError).message };
  }
  throw new Error('did not throw');
}

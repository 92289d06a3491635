// src/sys/addon.ts takes the addon the installed launcher has loaded already (each bundle
// has its own copy of the module; loading the file again would run its init once more).
import { expect, it } from 'vitest';

it('uses the addon the launcher left on the global object, without loading it again', async () => {
  const left = { strerror: () => 'from the launcher' };
  (globalThis as Record<symbol, unknown>)[Symbol.for('flannelette.addon')] = left;
  const { addon, strerror } = await import('../../src/sys/addon.ts');
  expect(addon()).toBe(left);
  expect(strerror(1)).toBe('from the launcher');
});

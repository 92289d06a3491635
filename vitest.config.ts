import { defineConfig } from 'vitest/config';

// Two projects: `unit` imports src/ and needs neither root nor a build (seconds);
// `system` runs the installed executables in network namespaces, beside the reference
// plugins, etcd and the runtimes (needs root and `npm run setup`).
export default defineConfig({
  test: {
    // Plugins run as real processes in real namespaces: run files two at a time at most (2 cores).
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'system',
          include: ['test/system/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});

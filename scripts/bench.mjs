// `npm run bench` (after the build): the benchmark proper is TypeScript in scripts/bench/,
// run by Node 24's type stripping. See scripts/bench/main.ts for the options.
await import('./bench/main.ts');

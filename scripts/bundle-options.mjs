// The esbuild options of every bundle we ship, in one place: scripts/build.mjs uses them
// for the executables, and the benchmark's start-up experiments bundle the same way.
export const bundleOptions = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  // Syntax only, names kept: full minification saves nothing measurable with V8's code
  // cache (scripts/install.sh; compile 4.0 -> 3.3 ms without it, 0 with it), and names
  // help stack traces.
  minifySyntax: true,
  legalComments: 'none',
  // ASCII only (esbuild escapes the rest): Node reads an ASCII file into a one-byte string,
  // half the size of the two-byte string one non-ASCII character in a comment forces,
  // and V8 compiles it faster: 0.4 ms less per call (measured).
  charset: 'ascii',
  // Source run as ESM finds the addon through import.meta.url (src/sys/addon.ts); a
  // CommonJS bundle has __filename instead.
  define: { 'import.meta.url': 'undefined' },
};

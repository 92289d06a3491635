// Writing the store's own temp files without being led elsewhere: whatever sits at the
// name (a leftover of a killed writer, a symlink someone planted, dangling or not) is
// removed, never written through, and the file is created anew (O_EXCL does not follow a
// symlink). So a link at a temp name can neither redirect a write outside the store nor
// make every later write fail.
import { closeSync, constants, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';

export function writeFresh(file: string, data: string, mode = 0o644): void {
  // Asked first: a thrown ENOENT costs more than the question.
  if (lstatSync(file, { throwIfNoEntry: false })) unlinkSync(file);
  const buf = Buffer.from(data);
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    if (writeSync(fd, buf) !== buf.length) throw new Error(`short write to ${file}`);
  } finally {
    closeSync(fd);
  }
}

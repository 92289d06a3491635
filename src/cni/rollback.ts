// Undo for multi-step verbs: each step says how to undo itself; when a later step fails,
// what was done is undone newest first and the original error is answered. An undo that
// fails is reported on stderr and does not hide the error that caused the rollback.

type Undo = () => Promise<unknown> | unknown;

export class Rollback {
  private readonly undos: Array<{ name: string; undo: Undo }> = [];

  /**
   * Runs step `name`; when it succeeds, `undo` (given its value) joins the undo list.
   * With `partial`, the undo joins first: for steps that may fail half way, whose undo is
   * safe whatever they got done (it is then called without a value).
   */
  async step<T>(name: string, run: () => Promise<T> | T, undo?: (value?: T) => Promise<unknown> | unknown, opts: { partial?: boolean } = {}): Promise<T> {
    if (undo && opts.partial) {
      this.undos.push({ name, undo: () => undo() });
      return run();
    }
    const value = await run();
    if (undo) this.undos.push({ name, undo: () => undo(value) });
    return value;
  }

  /** Registers an undo now: it must be safe to run whether or not its step got far. */
  onUndo(name: string, undo: Undo): void {
    this.undos.push({ name, undo });
  }

  /** Runs the undos, newest first; returns the failures as text. */
  async unwind(): Promise<string[]> {
    const failures: string[] = [];
    for (const { name, undo } of this.undos.splice(0).reverse()) {
      try {
        await undo();
      } catch (err) {
        failures.push(`undo ${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return failures;
  }
}

/** Runs `body` with a Rollback; on failure undoes its steps and rethrows. */
export async function withRollback<T>(body: (rb: Rollback) => Promise<T>): Promise<T> {
  const rb = new Rollback();
  try {
    return await body(rb);
  } catch (err) {
    for (const f of await rb.unwind()) process.stderr.write(`${f}\n`);
    throw err;
  }
}

// An overlay agent for the unit tests: the real Agent over an in-memory etcd
// (memory-subnet-store.ts) and an in-memory kernel (fake-dataplane.ts), with its log kept.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { Agent, type AgentDeps, type AgentOptions, type Timing } from '../../src/overlay/agent.ts';
import type { Logger } from '../../src/overlay/log.ts';
import { eventually } from './eventually.ts';
import { FakeDataplane } from './fake-dataplane.ts';
import type { MemoryEtcd } from './memory-subnet-store.ts';

/** Retry delays of milliseconds: races and refusals play out within a test. */
export const FAST: Timing = {
  store: { baseMs: 1, maxMs: 20 },
  race: { baseMs: 1, maxMs: 20 },
  full: { baseMs: 5, maxMs: 40 },
  peer: { baseMs: 20, maxMs: 160 },
};

/** Subnet files live here (made on first use; removeAgentTmp() at the end). */
let tmpDir: string | undefined;
export function agentTmp(): string {
  tmpDir ??= mkdtempSync(path.join(os.tmpdir(), 'flannelette-agent-unit-'));
  return tmpDir;
}
export function removeAgentTmp(): void {
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
}

export interface TestNodeOptions {
  deps?: Partial<AgentDeps>;
  /** An IPv6 address on the underlay, for dual-stack configs. */
  v6?: boolean;
  /** Default: a fresh one under agentTmp(). */
  subnetFile?: string;
  opts?: Partial<AgentOptions>;
}

const nodes = new Set<TestNode>();

/** Stops every node started since the last call (an afterEach). */
export async function stopAllNodes(): Promise<void> {
  await Promise.all([...nodes].map((n) => n.stop()));
  nodes.clear();
}

/** One agent on an in-memory kernel, against `etcd`; stopped by stopAllNodes(). */
export class TestNode {
  readonly lines: string[] = [];
  readonly dp: FakeDataplane;
  readonly agent: Agent;
  readonly running: Promise<void>;
  /** Set when run() ends: 'stopped', or the error it threw. */
  ended?: 'stopped' | Error;

  readonly subnetFile: string;

  constructor(
    readonly etcd: MemoryEtcd,
    /** Its underlay address is 172.16.1.<n> (and fd00:172:16:1::<n> with `v6`). */
    readonly n: number,
    o: TestNodeOptions = {},
  ) {
    const { deps = {}, opts = {} } = o;
    const subnetFile = (this.subnetFile = o.subnetFile ?? path.join(agentTmp(), `${process.hrtime.bigint()}-${n}.env`));
    this.dp = new FakeDataplane(`172.16.1.${n}`, o.v6 ? `fd00:172:16:1::${n}` : undefined);
    const log: Logger = {
      info: (m) => this.lines.push(`info ${m}`),
      warn: (m) => this.lines.push(`warn ${m}`),
      error: (m) => this.lines.push(`error ${m}`),
    };
    this.agent = new Agent(
      { subnetFile, ipMasq: false, leaseTtl: 60, releaseOnExit: false, ...opts },
      { store: etcd.client(), dataplane: this.dp, log, timing: FAST, ...deps },
    );
    this.running = this.agent.run().then(
      () => void (this.ended = 'stopped'),
      (err: Error) => void (this.ended = err),
    );
    nodes.add(this);
  }

  get subnet(): string {
    const s = this.agent.status().subnet;
    if (!s) throw new Error(`node ${this.n} has no subnet yet:\n${this.log}`);
    return s;
  }

  /** Waits until the node holds its lease and has written its subnet file. */
  async ready(): Promise<void> {
    await eventually(() => expect(this.agent.status().ready, this.log).toBe(true), 5000, 10);
  }

  get key(): string {
    const v6 = this.agent.status().ipv6Subnet;
    return `${this.subnet.replace('/', '-')}${v6 ? `&${v6.replace('/', '-')}` : ''}`;
  }

  get mac(): string {
    return this.dp.vxlan!.spec.mac;
  }

  get log(): string {
    return this.lines.join('\n');
  }

  /** Log lines matching `re`. */
  said(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }

  /** Waits until this node's kernel routes exactly the subnets of `others` (nodes or subnets). */
  async routesTo(others: ReadonlyArray<TestNode | string>, ms = 10_000): Promise<void> {
    await eventually(() => expect(this.dp.routes()).toEqual(others.map((o) => (typeof o === 'string' ? o : o.subnet)).sort()), ms, 10);
  }

  async stop(): Promise<void> {
    this.agent.stop();
    await this.running;
  }
}

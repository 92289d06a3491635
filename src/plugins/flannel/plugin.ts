// The flannel meta-plugin: turns flanneld's subnet file into a config for a real plugin
// (bridge + host-local by default), keeps that config per container, and delegates.
//   ADD:   subnet file + config -> delegate config -> store it -> delegate ADD -> its result
//   DEL:   stored config -> delegate DEL -> forget it (nothing stored: nothing to do)
//   CHECK: stored config + prevResult -> delegate CHECK
//   STATUS: the subnet file is there and readable (else 50: flanneld not ready)
import { CniError, ErrCode } from '../../cni/errors.ts';
import { formatResult, parseResult, type Result } from '../../cni/result.ts';
import type { Invocation, Plugin } from '../../cni/skel.ts';
import { readFlannelConf, type JsonObject } from './config.ts';
import { callDelegate, locateDelegate } from './delegate.ts';
import { buildDelegateConf, goJson } from './delegate-conf.ts';
import { loadDelegateConf, removeDelegateConf, saveDelegateConf } from './store.ts';
import { loadSubnetEnv } from './subnet-env.ts';

/** The stored config, parsed; undefined when it is not a usable JSON object with a type. */
function parseStored(bytes: Buffer): JsonObject | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as JsonObject).type === 'string') return v as JsonObject;
  } catch {
    // fall through
  }
  return undefined;
}

async function add(inv: Invocation): Promise<Result> {
  const conf = readFlannelConf(inv.conf, true);
  const env = loadSubnetEnv(conf.subnetFile);
  const delegate = buildDelegateConf(conf, env);
  const bytes = goJson(delegate);
  // A delegate that is not installed fails the ADD before anything is stored or done.
  const target = locateDelegate(delegate.type as string, inv);
  // Stored before the delegate runs, and kept if it fails: the runtime's DEL after a
  // failed ADD then gives the delegate the config it needs to undo a half-done ADD.
  saveDelegateConf(conf.dataDir, inv.containerId, bytes);
  let raw: unknown;
  try {
    raw = await callDelegate(target, 'ADD', inv, bytes);
  } catch (err) {
    if (err instanceof CniError) throw new CniError(err.code, `failed to delegate add: ${err.message}`, err.details);
    throw err;
  }
  if (raw === undefined) throw new CniError(ErrCode.Internal, `failed to delegate add: ${delegate.type} printed no result`);
  return parseResult(raw);
}

async function del(inv: Invocation): Promise<void> {
  const conf = readFlannelConf(inv.conf, false);
  const bytes = loadDelegateConf(conf.dataDir, inv.containerId);
  // Never added, or already deleted: DEL must succeed all the same.
  if (bytes === undefined) return;
  const stored = parseStored(bytes);
  if (!stored) {
    // Nothing a delegate could act on; dropping it beats failing every future DEL.
    process.stderr.write(`flannel: ignoring unreadable delegate config for ${inv.containerId}\n`);
    removeDelegateConf(conf.dataDir, inv.containerId);
    return;
  }
  await callDelegate(locateDelegate(stored.type as string, inv), 'DEL', inv, bytes);
  // Only once the delegate has cleaned up: a failed DEL is retried with the same config.
  removeDelegateConf(conf.dataDir, inv.containerId);
}

async function check(inv: Invocation): Promise<void> {
  const conf = readFlannelConf(inv.conf, false);
  const bytes = loadDelegateConf(conf.dataDir, inv.containerId);
  if (bytes === undefined) throw new CniError(ErrCode.UnknownContainer, `no delegate config stored for container ${inv.containerId}`);
  const stored = parseStored(bytes);
  if (!stored) throw new CniError(ErrCode.DecodingFailure, `the delegate config stored for container ${inv.containerId} is unreadable`);
  if (inv.conf.prevResult !== undefined) {
    const version = typeof stored.cniVersion === 'string' ? stored.cniVersion : inv.conf.cniVersion;
    stored.prevResult = formatResult(parseResult(inv.conf.prevResult), version);
  }
  await callDelegate(locateDelegate(stored.type as string, inv), 'CHECK', inv, goJson(stored));
}

async function status(inv: Invocation): Promise<void> {
  const conf = readFlannelConf(inv.conf, false);
  try {
    loadSubnetEnv(conf.subnetFile);
  } catch (err) {
    throw new CniError(ErrCode.PluginNotAvailable, (err as Error).message);
  }
}

export const flannelPlugin: Plugin = { add, del, check, status };

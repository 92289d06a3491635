// The flannel plugin's own configuration: the keys flannel's CNI plugin reads, type-checked
// up front so that a bad config fails with code 7 naming the key, not half-way through.
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { NetConf } from '../../cni/skel.ts';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_DATA_DIR = '/var/lib/cni/flannel';

export type JsonObject = Record<string, unknown>;

export interface FlannelConf {
  name: string;
  cniVersion: string;
  subnetFile: string;
  dataDir: string;
  /** Keys for the delegate's config, overriding what flannel derives. */
  delegate: JsonObject;
  /** The `ipam` section to start the delegate's from (ranges are always replaced). */
  ipam?: JsonObject;
  runtimeConfig?: JsonObject;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(msg: string): CniError {
  return new CniError(ErrCode.InvalidNetworkConfig, msg);
}

function optString(conf: NetConf, key: string, fallback: string): string {
  const v = conf[key];
  if (v === undefined || v === null || v === '') return fallback;
  if (typeof v !== 'string') throw invalid(`"${key}" must be a string`);
  return v;
}

function optObject(conf: NetConf, key: string): JsonObject | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid(`"${key}" must be an object`);
  return v;
}

/** Reads flannel's keys from the network configuration. `forAdd` also checks `delegate`. */
export function readFlannelConf(conf: NetConf, forAdd: boolean): FlannelConf {
  const delegate = { ...(optObject(conf, 'delegate') ?? {}) };
  if (forAdd) {
    if ('type' in delegate && typeof delegate.type !== 'string') {
      throw invalid("'delegate' dictionary, if present, must have (string) 'type' field");
    }
    // flannel owns these two: the delegate is named after the network and gets flannel's IPAM.
    if ('name' in delegate) throw invalid("'delegate' dictionary must not have 'name' field, it'll be set by flannel");
    if ('ipam' in delegate) throw invalid("'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  }
  const out: FlannelConf = {
    name: conf.name,
    cniVersion: conf.cniVersion,
    subnetFile: optString(conf, 'subnetFile', DEFAULT_SUBNET_FILE),
    dataDir: optString(conf, 'dataDir', DEFAULT_DATA_DIR),
    delegate,
  };
  const ipam = optObject(conf, 'ipam');
  if (ipam) out.ipam = ipam;
  const rc = optObject(conf, 'runtimeConfig');
  if (rc) out.runtimeConfig = rc;
  return out;
}

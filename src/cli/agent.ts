// `flannelette agent`: runs the overlay agent in the foreground until SIGTERM or SIGINT.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Agent, type AgentOptions } from '../overlay/agent.ts';
import { EtcdClient, type EtcdClientOptions } from '../overlay/etcd.ts';
import { EtcdSubnetStore } from '../overlay/etcd-subnet-store.ts';
import { serveHealthz } from '../overlay/healthz.ts';
import { KernelDataplane } from '../overlay/kernel-dataplane.ts';
import { stderrLogger } from '../overlay/log.ts';

/** The agent's options as given on the command line (flanneld's names), and where etcd is. */
export interface AgentArgs extends AgentOptions {
  /** Comma-separated http:// or https:// URLs. */
  etcdEndpoints: string;
  etcdPrefix: string;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
  healthzIp: string;
  /** 0: no health endpoint. */
  healthzPort: number;
}

class UsageError extends Error {}

/** The etcd client's options from the flags; throws UsageError for what cannot work. */
function etcdOptions(argv: AgentArgs): EtcdClientOptions {
  const endpoints = argv.etcdEndpoints
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const read = (flag: string, file: string | undefined) => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag} ${file}: ${(err as Error).message}`);
    }
  };
  if (Boolean(argv.etcdCertfile) !== Boolean(argv.etcdKeyfile)) throw new UsageError('--etcd-certfile and --etcd-keyfile go together');
  if (Boolean(argv.etcdUsername) !== Boolean(argv.etcdPassword)) throw new UsageError('--etcd-username and --etcd-password go together');
  const tls = argv.etcdCafile || argv.etcdCertfile;
  if (tls && !endpoints.some((e) => e.startsWith('https://'))) throw new UsageError('TLS files given, but no --etcd-endpoints URL is https://');
  const ca = read('--etcd-cafile', argv.etcdCafile);
  const cert = read('--etcd-certfile', argv.etcdCertfile);
  const key = read('--etcd-keyfile', argv.etcdKeyfile);
  return {
    endpoints,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(argv.etcdUsername ? { username: argv.etcdUsername, password: argv.etcdPassword ?? '' } : {}),
  };
}

/** Runs the agent; resolves to the exit code (0 after a signal, 1 on a fatal error, 2 for bad flags). */
export async function agentCommand(argv: AgentArgs): Promise<number> {
  const log = stderrLogger();
  if (!Number.isInteger(argv.leaseTtl) || argv.leaseTtl < 2) {
    log.error('--lease-ttl must be a whole number of seconds, at least 2');
    return 2;
  }
  if (!Number.isInteger(argv.healthzPort) || argv.healthzPort < 0 || argv.healthzPort > 65_535) {
    log.error('--healthz-port must be a port number (0: no health endpoint)');
    return 2;
  }
  if (argv.kernelCheckInterval !== undefined && !(argv.kernelCheckInterval >= 0)) {
    log.error('--kernel-check-interval must be a number of seconds (0: never)');
    return 2;
  }
  let etcd: EtcdClient;
  try {
    etcd = new EtcdClient({ ...etcdOptions(argv), onMove: (from, to, why) => log.warn(`etcd ${from} failed (${why}): moving to ${to}`) });
  } catch (err) {
    log.error((err as Error).message);
    return 2;
  }
  const dataplane = new KernelDataplane();
  const agent = new Agent(
    {
      ...(argv.iface ? { iface: argv.iface } : {}),
      ...(argv.publicIp ? { publicIp: argv.publicIp } : {}),
      ...(argv.publicIpv6 ? { publicIpv6: argv.publicIpv6 } : {}),
      subnetFile: argv.subnetFile,
      ipMasq: argv.ipMasq,
      leaseTtl: argv.leaseTtl,
      releaseOnExit: argv.releaseOnExit,
      kernelCheckInterval: argv.kernelCheckInterval,
    },
    { store: new EtcdSubnetStore(etcd, argv.etcdPrefix), dataplane, log },
  );
  const onSignal = (sig: NodeJS.Signals) => {
    log.info(`${sig}: stopping (the lease ${argv.releaseOnExit ? 'is released' : 'stays until its TTL'}, the devices and routes stay)`);
    agent.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const auth = [argv.etcdCertfile ? 'client certificate' : '', argv.etcdUsername ? `user ${argv.etcdUsername}` : ''].filter(Boolean).join(', ');
  log.info(`flannelette agent: etcd ${argv.etcdEndpoints}${auth ? ` (${auth})` : ''}, prefix ${argv.etcdPrefix}`);
  let healthz: Server | undefined;
  try {
    if (argv.healthzPort > 0) {
      healthz = await serveHealthz(argv.healthzIp, argv.healthzPort, () => agent.status());
      log.info(`healthz on http://${argv.healthzIp.includes(':') ? `[${argv.healthzIp}]` : argv.healthzIp}:${argv.healthzPort}/healthz`);
    }
    await agent.run();
    log.info('stopped');
    return 0;
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  } finally {
    healthz?.close();
    etcd.close();
    dataplane.close();
  }
}

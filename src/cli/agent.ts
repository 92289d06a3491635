// `flannelette agent`: runs the overlay agent in the foreground until SIGTERM or SIGINT.
import { Agent, type AgentOptions } from '../overlay/agent.ts';
import { EtcdClient } from '../overlay/etcd.ts';
import { stderrLogger } from '../overlay/log.ts';
import { EtcdSubnetStore } from '../overlay/store.ts';

/** The agent's options as given on the command line, and where etcd is. */
export interface AgentArgs extends AgentOptions {
  /** Comma-separated http:// URLs. */
  etcdEndpoints: string;
  etcdPrefix: string;
}

/** Runs the agent; resolves to the exit code (0 after a signal, 1 on a fatal error). */
export async function agentCommand(argv: AgentArgs): Promise<number> {
  const log = stderrLogger();
  if (!Number.isInteger(argv.leaseTtl) || argv.leaseTtl < 2) {
    log.error('--lease-ttl must be a whole number of seconds, at least 2');
    return 2;
  }
  const endpoints = argv.etcdEndpoints
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  let etcd: EtcdClient;
  try {
    etcd = new EtcdClient(endpoints);
  } catch (err) {
    log.error((err as Error).message);
    return 2;
  }
  const agent = new Agent(
    {
      ...(argv.iface ? { iface: argv.iface } : {}),
      ...(argv.publicIp ? { publicIp: argv.publicIp } : {}),
      subnetFile: argv.subnetFile,
      ipMasq: argv.ipMasq,
      leaseTtl: argv.leaseTtl,
      releaseOnExit: argv.releaseOnExit,
    },
    new EtcdSubnetStore(etcd, argv.etcdPrefix),
    log,
  );
  const onSignal = (sig: NodeJS.Signals) => {
    log.info(`${sig}: stopping (the lease ${argv.releaseOnExit ? 'is released' : 'stays until its TTL'}, flannel.1 and its entries stay)`);
    agent.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  log.info(`flannelette agent: etcd ${endpoints.join(',')}, prefix ${argv.etcdPrefix}`);
  try {
    await agent.run();
    log.info('stopped');
    return 0;
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  } finally {
    etcd.close();
  }
}

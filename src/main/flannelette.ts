// The `flannelette` command: `agent` (the VXLAN overlay agent), `explain` (a pod's
// packet path) and `leases` (host-local's leases, live or dead). Each subcommand's module
// is loaded only when that subcommand runs.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

const finish = (code: number) => process.exit(code);

void yargs(hideBin(process.argv))
  .scriptName('flannelette')
  .command(
    'agent',
    'run the overlay agent of this node (subnet lease in etcd; vxlan or host-gw routes to the other nodes, IPv4 and IPv6)',
    (y) =>
      y
        // flanneld's flags (and, as flanneld, FLANNELD_<FLAG> in the environment), so its manifests carry over.
        .env('FLANNELD')
        .option('etcd-endpoints', {
          type: 'string',
          default: 'http://127.0.0.1:4001,http://127.0.0.1:2379',
          describe: 'etcd client URLs (http:// or https://), comma-separated; the next is tried when one stops answering',
        })
        .option('etcd-prefix', { type: 'string', default: '/coreos.com/network', describe: 'where the network config and the subnet leases live' })
        .option('etcd-cafile', { type: 'string', describe: "PEM file of the CA that signed etcd's certificate" })
        .option('etcd-certfile', { type: 'string', describe: "PEM file of this client's certificate (etcd's --client-cert-auth)" })
        .option('etcd-keyfile', { type: 'string', describe: "PEM file of this client's private key" })
        .option('etcd-username', { type: 'string', describe: 'etcd user (auth enabled); its role needs readwrite on the prefix' })
        .option('etcd-password', { type: 'string', describe: "the etcd user's password (better: FLANNELD_ETCD_PASSWORD in the environment)" })
        .option('iface', { type: 'string', describe: "underlay interface (name or address); default: the default route's" })
        .option('public-ip', { type: 'string', describe: "this node's address for the other nodes; default: the interface's first IPv4" })
        .option('public-ipv6', { type: 'string', describe: "dual-stack: this node's IPv6 address for the other nodes; default: the interface's first IPv6" })
        .option('subnet-file', {
          type: 'string',
          default: '/run/flannel/subnet.env',
          describe: 'where to write FLANNEL_NETWORK, FLANNEL_SUBNET (and FLANNEL_IPV6_*), FLANNEL_MTU, FLANNEL_IPMASQ',
        })
        .option('ip-masq', { type: 'boolean', default: false, describe: 'masquerade traffic from pods leaving the overlay' })
        .option('healthz-ip', { type: 'string', default: '0.0.0.0', describe: 'address of the health endpoint (GET /healthz, /readyz)' })
        .option('healthz-port', { type: 'number', default: 0, describe: 'port of the health endpoint (0: none)' })
        .option('lease-ttl', { type: 'number', default: 86400, describe: 'subnet lease TTL in seconds (renewed every third of it)' })
        .option('release-on-exit', { type: 'boolean', default: false, describe: 'revoke the lease on SIGTERM/SIGINT instead of keeping it for a restart' })
        .option('kernel-check-interval', {
          type: 'number',
          default: 10,
          describe: 'seconds between checks that the devices, routes, neighbours and fdb entries made are still there (0: never)',
        }),
    async (argv) => finish(await (await import('../cli/agent.ts')).agentCommand(argv)),
  )
  .command(
    'explain <target>',
    "show a pod's packet path hop by hop (run it in the pod's node namespace)",
    (y) =>
      y
        .positional('target', { type: 'string', demandOption: true, describe: "the pod's IP or container ID" })
        .option('to', { type: 'string', describe: 'follow the path towards this address' })
        .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
        .option('netns', { type: 'string', describe: "the pod's network namespace (path), if it cannot be found" })
        .option('data-dir', { type: 'string', describe: "host-local's dataDir (default /var/lib/cni/networks)" })
        .option('cache-dir', { type: 'string', describe: "libcni's cache dir (default /var/lib/cni)" }),
    async (argv) => finish(await (await import('../cli/explain.ts')).explainCommand(argv)),
  )
  .command(
    'leases',
    "list host-local's leases and whether each pod is live, dead or unknown (run it in the node's namespace); --reclaim releases the dead ones",
    (y) =>
      y
        .option('network', { type: 'string', describe: 'only this network (default: every network under the data dir)' })
        .option('data-dir', { type: 'string', describe: "host-local's dataDir (default /var/lib/cni/networks)" })
        .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
        .option('reclaim', { type: 'boolean', default: false, describe: 'release the dead leases, under the store lock' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'with --reclaim: say what would be released, release nothing' })
        .option('boot-only', { type: 'boolean', default: false, describe: 'pods not attached by veths (macvlan, ipvlan): only a reboot proves a lease dead' }),
    async (argv) => finish(await (await import('../cli/leases.ts')).leasesCommand(argv)),
  )
  .demandCommand(1, 'name a command: agent, explain or leases')
  .strict()
  .help()
  .parseAsync()
  .catch((err: Error) => {
    process.stderr.write(`flannelette: ${err.message}\n`);
    finish(2);
  });

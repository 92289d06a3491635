// Choosing a free subnet: pure address logic, no store. Lowest free first, so a fresh
// cluster hands out 10.244.1.0/24, 10.244.2.0/24... in join order, as in the walk-through.
import type { NetworkConfig } from './config.ts';
import { blockSize, contains, type Cidr } from './ipv4.ts';

/** Whether `subnet` is one this config may lease: the right size, between SubnetMin and SubnetMax. */
export function isLeasable(config: NetworkConfig, subnet: Cidr): boolean {
  return subnet.len === config.subnetLen && contains(config.network, subnet.ip) && subnet.ip >= config.subnetMin && subnet.ip <= config.subnetMax;
}

/**
 * A free subnet: `preferred` when it is leasable and free, else the lowest free one;
 * undefined when the range is full. `taken` holds the network addresses of leased subnets.
 */
export function pickSubnet(config: NetworkConfig, taken: ReadonlySet<number>, preferred?: Cidr): Cidr | undefined {
  if (preferred && isLeasable(config, preferred) && !taken.has(preferred.ip)) return preferred;
  const size = blockSize(config.subnetLen);
  for (let ip = config.subnetMin; ip <= config.subnetMax; ip += size) {
    if (!taken.has(ip)) return { ip, len: config.subnetLen };
  }
  return undefined;
}

// ipam.resolvConf: a resolv.conf file turned into the result's `dns`, read the way the
// reference's dns.go reads it (first field of nameserver/domain, all fields of
// search/options; comments and short lines skipped).
import { readFileSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';
import type { DNS } from '../cni/result.ts';

export function parseResolvConfText(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    const rest = fields.slice(1);
    switch (fields[0]) {
      case 'nameserver':
        (dns.nameservers ??= []).push(rest[0]!);
        break;
      case 'domain':
        dns.domain = rest[0]!;
        break;
      case 'search':
        (dns.search ??= []).push(...rest);
        break;
      case 'options':
        (dns.options ??= []).push(...rest);
        break;
    }
  }
  return dns;
}

export function readResolvConf(file: string): DNS {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CniError(ErrCode.IOFailure, `failed to read resolvConf ${file}: ${(err as Error).message}`);
  }
  return parseResolvConfText(text);
}

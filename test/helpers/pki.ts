// Certificates for etcd over TLS, made in the test with openssl: a CA, a server certificate
// for the etcd members' addresses (also usable as a client: etcd 3.4's JSON gateway dials
// its own server with it), a client certificate for the agents, and a second CA that
// signed none of them (the "wrong CA"). With auth on, etcd 3.4's gateway refuses a client
// certificate that carries a CommonName (it could not pass the CN on as the user), so there
// is also a client certificate without one, for use with a username and password.
import { execa } from 'execa';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate without a CommonName (subject O=flannelette only). */
  anonCert: string;
  anonKey: string;
  /** A CA that signed nothing here. */
  otherCa: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string): Promise<{ pem: string; key: string }> {
  const pem = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  await execa('openssl', ['req', '-x509', ...EC, '-keyout', key, '-out', pem, '-days', '2', '-subj', `/CN=${name}`]);
  return { pem, key };
}

async function sign(dir: string, name: string, ca: { pem: string; key: string }, ext: string, subj = `/CN=${name}`): Promise<{ pem: string; key: string }> {
  const pem = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  await execa('openssl', ['req', '-new', ...EC, '-keyout', key, '-out', csr, '-subj', subj]);
  await execa('openssl', ['x509', '-req', '-in', csr, '-CA', ca.pem, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', extFile, '-out', pem]);
  return { pem, key };
}

/** Makes the set under `dir`; the server certificate names `serverIps`. */
export async function makePki(dir: string, serverIps: readonly string[]): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const [ca, other] = await Promise.all([makeCa(dir, 'ca'), makeCa(dir, 'other-ca')]);
  const san = `subjectAltName=${['127.0.0.1', ...serverIps].map((ip) => `IP:${ip}`).join(',')}\n`;
  const [server, client, anon] = await Promise.all([
    sign(dir, 'server', ca, `${san}extendedKeyUsage=serverAuth,clientAuth\n`),
    sign(dir, 'client', ca, 'extendedKeyUsage=clientAuth\n'),
    sign(dir, 'anon', ca, 'extendedKeyUsage=clientAuth\n', '/O=flannelette'),
  ]);
  return {
    ca: ca.pem,
    serverCert: server.pem,
    serverKey: server.key,
    clientCert: client.pem,
    clientKey: client.key,
    anonCert: anon.pem,
    anonKey: anon.key,
    otherCa: other.pem,
  };
}

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A real OpenLDAP server (Debian's slapd) for the staff-login tests, started as the test's own
 * process on fixed loopback ports with a temporary configuration, a self-signed certificate made
 * here with openssl (for LDAPS and StartTLS) and a small directory:
 *
 * - alice@example.com (uid alice), member of cn=portico-admins: may use the console;
 * - bob@example.com (uid bob), in no group;
 * - carol@example.com (uid carol), member of cn=portico-admins (the group-removal case);
 * - dave@example.com (uid dave), member of cn=portico-admins (two first logins at once);
 * - cn=portico,ou=services: the service account that searches.
 *
 * Without slapd the tests skip, unless REQUIRE_LDAP=1 (set by .ci/run), where its absence fails them.
 */
export const SLAPD = '/usr/sbin/slapd';
export const SLAPADD = '/usr/sbin/slapadd';

export const SUFFIX = 'dc=example,dc=com';
export const ADMIN_GROUP = `cn=portico-admins,ou=groups,${SUFFIX}`;
export const SERVICE_DN = `cn=portico,ou=services,${SUFFIX}`;
export const SERVICE_PASSWORD = 'service account secret';
export const PASSWORDS = {
  alice: 'alice directory password',
  bob: 'bob directory password',
  carol: 'carol pw 123',
  dave: 'dave directory password',
};

/** The ports this suite may bind (47200–47299): plain LDAP (StartTLS), LDAPS, and one nobody listens on. */
export const PORTS = { ldap: 47201, ldaps: 47202, nothing: 47203 };

export function slapdAvailable(): boolean {
  if (fs.existsSync(SLAPD) && fs.existsSync(SLAPADD)) return true;
  if (process.env.REQUIRE_LDAP === '1')
    throw new Error(`slapd not found at ${SLAPD} (apt-get install slapd ldap-utils); REQUIRE_LDAP=1 forbids skipping`);
  return false;
}

const ldif = `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,${SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ou=services,${SUFFIX}
objectClass: organizationalUnit
ou: services

dn: ${SERVICE_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: portico
sn: service
userPassword: ${SERVICE_PASSWORD}

dn: uid=alice,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice Admin
sn: Admin
displayName: Alice Admin
mail: alice@example.com
userPassword: ${PASSWORDS.alice}

dn: uid=bob,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: Bob Outsider
sn: Outsider
mail: bob@example.com
userPassword: ${PASSWORDS.bob}

dn: uid=carol,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: carol
cn: Carol Leaver
sn: Leaver
mail: carol@example.com
userPassword: ${PASSWORDS.carol}

dn: uid=dave,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: dave
cn: Dave Twice
sn: Twice
mail: dave@example.com
userPassword: ${PASSWORDS.dave}

dn: ${ADMIN_GROUP}
objectClass: groupOfNames
cn: portico-admins
member: uid=alice,ou=people,${SUFFIX}
member: uid=carol,ou=people,${SUFFIX}
member: uid=dave,ou=people,${SUFFIX}
`;

const config = (dir: string) => `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
TLSCertificateFile ${dir}/cert.pem
TLSCertificateKeyFile ${dir}/key.pem
database mdb
maxsize 16777216
suffix "${SUFFIX}"
rootdn "cn=manager,${SUFFIX}"
rootpw manager-only-for-the-test
directory ${dir}/db
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="${SERVICE_DN}" read by self read by * none
`;

export interface Slapd {
  /** ldap:// (for StartTLS), ldaps://, and an address nobody answers on. */
  ldapUrl: string;
  ldapsUrl: string;
  downUrl: string;
  /** The self-signed certificate (PEM) clients must trust. */
  caPem: string;
  dir: string;
  /** Removes carol from the admin group (slapd stopped, the database rewritten, started again). */
  removeFromGroup(uid: string): Promise<void>;
  stop(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startSlapd(): Promise<Slapd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-slapd-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'pipe' },
  );
  fs.writeFileSync(path.join(dir, 'slapd.conf'), config(dir));
  let data = ldif;
  let child: ChildProcess | undefined;
  let output = '';

  const load = () => {
    fs.rmSync(path.join(dir, 'db'), { recursive: true, force: true });
    fs.mkdirSync(path.join(dir, 'db'));
    fs.writeFileSync(path.join(dir, 'data.ldif'), data);
    execFileSync(SLAPADD, ['-f', path.join(dir, 'slapd.conf'), '-l', path.join(dir, 'data.ldif')], { stdio: 'pipe' });
  };
  const start = async () => {
    for (const port of [PORTS.ldap, PORTS.ldaps])
      if (await portOpen(port)) throw new Error(`port ${port} is taken: is another slapd of this suite still running?`);
    // -d 0: stay in the foreground (the test owns the process) and log nothing.
    child = spawn(
      SLAPD,
      [
        '-d',
        '0',
        '-f',
        path.join(dir, 'slapd.conf'),
        '-h',
        // 127.0.0.2 too: an address the certificate does not name (the host-name check's test).
        `ldap://127.0.0.1:${PORTS.ldap}/ ldaps://127.0.0.1:${PORTS.ldaps}/ ldaps://127.0.0.2:${PORTS.ldaps}/`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d) => (output += d.toString()));
    child.stderr?.on('data', (d) => (output += d.toString()));
    const reap = () => child?.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.off('exit', reap));
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`slapd exited (${child.exitCode}): ${output}`);
      if ((await portOpen(PORTS.ldap)) && (await portOpen(PORTS.ldaps))) return;
      await sleep(50);
    }
    throw new Error(`slapd did not listen within 10 s: ${output}`);
  };
  const stopChild = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };

  load();
  await start();
  return {
    ldapUrl: `ldap://127.0.0.1:${PORTS.ldap}`,
    ldapsUrl: `ldaps://127.0.0.1:${PORTS.ldaps}`,
    downUrl: `ldaps://127.0.0.1:${PORTS.nothing}`,
    caPem: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    dir,
    async removeFromGroup(uid: string) {
      await stopChild();
      data = data.replace(`member: uid=${uid},ou=people,${SUFFIX}\n`, '');
      load();
      await start();
    },
    async stop() {
      await stopChild();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

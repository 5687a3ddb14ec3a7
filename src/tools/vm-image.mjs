#!/usr/bin/env node
// The guest image for the VM tests: Debian's own kernel and a small initramfs (busybox, the
// virtio-net modules, iperf3 and its libraries, an /init with a command channel on the serial
// console), cached in build/vm/. Made once; made again only when a file is missing or RECIPE
// changes. Everything comes from Debian packages (`apt-get download`, `dpkg -x`) plus the
// shared libraries iperf3 needs, taken from this machine (ldd): the guest is the same
// Debian/x86_64, so the host's libc and dynamic loader are the guest's too.
//
//   node src/tools/vm-image.mjs            build if needed, print the paths
//   node src/tools/vm-image.mjs --force    build again
//   import { ensureImage } from './vm-image.mjs'; const { kernel, initrd } = await ensureImage({ log });
//
// The guest (see INIT below): mounts proc/sys/dev, insmods the modules in dependency order,
// gives eth0 the address from the kernel command line (wasmap.ip=10.77.0.11/24), waits (≤ 5 s)
// for its operstate to be up, starts `iperf3 -s -D`, prints __WASMAP_READY__ and then reads
// lines "SEQ COMMAND" on the console, runs each with sh -c (stdin /dev/null, stderr into
// stdout) and prints "__WASMAP_DONE__ SEQ RC".
import { spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, renameSync,
  chmodSync, statSync, realpathSync,
} from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Bump when anything below changes what goes into the image: the cache is rebuilt. */
export const RECIPE = 2;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const imageDir = join(root, 'build', 'vm');
const meta = join(imageDir, 'image.json');

/** Modules the guest needs for virtio-net over PCI; their dependencies are added from the .ko files. */
const WANT_MODULES = ['virtio_pci', 'virtio_net'];
/** Where a library ldd could not find comes from (only needed when iperf3 is not installed here). */
const LIB_PACKAGES = { 'libsctp.so.1': 'libsctp1', 'libssl.so.3': 'libssl3', 'libcrypto.so.3': 'libssl3' };

const INIT = `#!/bin/sh
# wasmap test guest: no rootfs, everything lives in this initramfs
export PATH=/sbin:/bin:/usr/sbin:/usr/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm
hostname "$(sed -n 's/.*wasmap\\.name=\\([^ ]*\\).*/\\1/p' /proc/cmdline)"
for m in $(cat /lib/modules/wasmap/order); do
  insmod /lib/modules/wasmap/$m.ko || echo "wasmap-init: insmod $m failed"
done
ip link set lo up
ip=$(sed -n 's/.*wasmap\\.ip=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
if [ -e /sys/class/net/eth0 ]; then
  [ -n "$ip" ] && ip addr add "$ip" dev eth0
  ip link set eth0 up
  n=0
  while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
else
  echo "wasmap-init: no eth0"; ls /sys/class/net
fi
iperf3 -s -D
# keep the kernel off the command channel from now on (dmesg still has everything)
echo 1 > /proc/sys/kernel/printk
stty -echo 2>/dev/null
echo __WASMAP_READY__
while IFS= read -r line; do
  seq=\${line%% *}
  cmd=\${line#* }
  sh -c "$cmd" </dev/null 2>&1
  echo "__WASMAP_DONE__ $seq $?"
done
poweroff -f
`;

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout || '').trim()}`);
  return r.stdout;
}

/** True when build/vm holds an image of this recipe. */
export function imageReady() {
  try {
    const m = JSON.parse(readFileSync(meta, 'utf8'));
    return m.recipe === RECIPE && existsSync(join(imageDir, 'vmlinuz')) && existsSync(join(imageDir, 'initramfs.cpio.gz'));
  } catch { return false; }
}

// ---- apt ---------------------------------------------------------------------------------

let updated = false;
/** Runs an apt command; when it cannot find a package and we are root, `apt-get update` once and retry. */
function apt(cmd, args, cwd) {
  for (;;) {
    const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status === 0 && !/^E: /m.test(r.stderr ?? '')) return r.stdout;
    const err = (r.error?.message ?? r.stderr ?? '').trim();
    if (!updated && process.getuid?.() === 0 && /Unable to locate|No packages found|Can't select|has no installation candidate|404/.test(err)) {
      updated = true;
      spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
      continue;
    }
    throw new Error(`${cmd} ${args.join(' ')}: ${err || `exit ${r.status}`}`);
  }
}

/** linux-image-amd64 is a metapackage: the kernel is the package it depends on. */
function kernelPackage() {
  if (process.env.WASMAP_VM_KERNEL_PKG) return process.env.WASMAP_VM_KERNEL_PKG;
  const out = apt('apt-cache', ['depends', '--important', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-\d\S*-amd64)\b/.exec(out);
  if (!m) throw new Error(`apt-cache depends linux-image-amd64: no linux-image-*-amd64 dependency in:\n${out}`);
  return m[1];
}

function download(pkgs, dir) {
  apt('apt-get', ['download', ...pkgs], dir);
  const debs = readdirSync(dir).filter((f) => f.endsWith('.deb'));
  for (const p of pkgs) if (!debs.some((f) => f.startsWith(`${p}_`))) throw new Error(`apt-get download ${p}: no .deb appeared in ${dir}`);
  return pkgs.map((p) => join(dir, debs.find((f) => f.startsWith(`${p}_`))));
}

// ---- kernel modules -----------------------------------------------------------------------

/** name → path of every .ko under a module tree ('-' and '_' are the same in module names). */
function moduleIndex(dir, out = new Map()) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) moduleIndex(p, out);
    else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
  }
  return out;
}

/** The `depends=` entry of a module's .modinfo section (what depmod writes into modules.dep). */
function moduleDepends(file) {
  const text = readFileSync(file).toString('latin1');
  const m = /(?:^|\0)depends=([^\0]*)\0/.exec(text);
  return m && m[1] ? m[1].split(',').map((s) => s.replace(/-/g, '_')) : [];
}

/** The wanted modules with their dependencies, dependencies first (insmod order). */
function moduleOrder(index, want) {
  const order = [], seen = new Set();
  const visit = (name, chain) => {
    if (seen.has(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const file = index.get(name);
    if (!file) throw new Error(`kernel module ${name} not found in the kernel package (needed by ${chain.at(-1) ?? 'the guest'})`);
    for (const d of moduleDepends(file)) visit(d, [...chain, name]);
    seen.add(name);
    order.push(name);
  };
  for (const w of want) visit(w, []);
  return order;
}

// ---- cpio (newc) --------------------------------------------------------------------------

class Cpio {
  constructor() { this.parts = []; this.ino = 1; this.names = new Set(); }
  entry(name, mode, data = Buffer.alloc(0), rdev = [0, 0]) {
    name = name.replace(/^\/+/, '');
    if (this.names.has(name)) return;
    this.names.add(name);
    const hex = (n) => n.toString(16).padStart(8, '0');
    const nameBuf = Buffer.from(name + '\0');
    const head = '070701' + [this.ino++, mode, 0, 0, (mode & 0o170000) === 0o040000 ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(hex).join('');
    const pad = (n) => Buffer.alloc((4 - (n % 4)) % 4);
    this.parts.push(Buffer.from(head), nameBuf, pad(110 + nameBuf.length), data, pad(data.length));
  }
  dir(name) {
    if (name === '.' || name === '/' || name === '') return;
    const parts = name.replace(/^\/+/, '').split('/');
    for (let i = 1; i <= parts.length; i++) this.entry(parts.slice(0, i).join('/'), 0o040755);
  }
  file(name, data, mode = 0o644) { this.dir(dirname(name)); this.entry(name, 0o100000 | mode, data); }
  symlink(name, target) { this.dir(dirname(name)); this.entry(name, 0o120777, Buffer.from(target)); }
  chardev(name, major, minor) { this.dir(dirname(name)); this.entry(name, 0o020600, undefined, [major, minor]); }
  finish() { this.entry('TRAILER!!!', 0); return Buffer.concat(this.parts); }
}

// ---- the build ----------------------------------------------------------------------------

/** Shared libraries of `bin` (soname → real file), and the dynamic loader. */
function libraries(bin, libPath) {
  const out = sh('ldd', [bin], { env: { ...process.env, LD_LIBRARY_PATH: libPath.join(':') } });
  const libs = new Map(), missing = [];
  let loader = null;
  for (const line of out.split('\n')) {
    let m;
    if ((m = /^\s*(\S+) => not found/.exec(line))) missing.push(m[1]);
    else if ((m = /^\s*(\S+) => (\/\S+) \(/.exec(line))) libs.set(m[1], realpathSync(m[2]));
    else if ((m = /^\s*(\/\S*ld-linux\S*) \(/.exec(line))) loader = m[1];
  }
  return { libs, missing, loader };
}

function build(log) {
  const t0 = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), 'wasmap-vm-'));
  chmodSync(tmp, 0o755); // apt-get download drops privileges to _apt, which must write here
  try {
    const kpkg = kernelPackage();
    log(`vm-image: downloading ${kpkg} busybox-static iperf3 libiperf0 (apt-get download)`);
    const debs = download([kpkg, 'busybox-static', 'iperf3', 'libiperf0'], tmp);
    const x = join(tmp, 'root');
    for (const d of debs) sh('dpkg', ['-x', d, x]);
    const usrlib = join(x, 'usr/lib/x86_64-linux-gnu');

    // the kernel and its modules
    const boot = join(x, 'boot');
    const vmlinuz = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${kpkg}: no /boot/vmlinuz-* in the package`);
    const kver = vmlinuz.slice('vmlinuz-'.length);
    const modIndex = moduleIndex(join(x, 'lib/modules', kver));
    const order = moduleOrder(modIndex, WANT_MODULES);

    // iperf3's libraries: libiperf from its package, the rest as this machine has them
    let lib = libraries(join(x, 'usr/bin/iperf3'), [usrlib]);
    if (lib.missing.length) {
      const pkgs = [...new Set(lib.missing.map((s) => LIB_PACKAGES[s] ?? null))];
      if (pkgs.includes(null)) throw new Error(`iperf3 needs ${lib.missing.join(', ')}, which this machine lacks (ldd); apt-get install iperf3 provides them`);
      log(`vm-image: downloading ${pkgs.join(' ')} (ldd did not find ${lib.missing.join(', ')})`);
      for (const d of download(pkgs, tmp)) sh('dpkg', ['-x', d, x]);
      lib = libraries(join(x, 'usr/bin/iperf3'), [usrlib, join(x, 'lib/x86_64-linux-gnu')]);
      if (lib.missing.length) throw new Error(`iperf3 still lacks ${lib.missing.join(', ')} after downloading ${pkgs.join(' ')}`);
    }
    if (!lib.loader) throw new Error('ldd named no dynamic loader for iperf3');

    const cpio = new Cpio();
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib/x86_64-linux-gnu', 'lib64', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'etc', 'var/run']) cpio.dir(d);
    cpio.chardev('dev/console', 5, 1);
    cpio.chardev('dev/null', 1, 3);
    cpio.file('init', Buffer.from(INIT), 0o755);
    cpio.file('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'));
    cpio.file('etc/group', Buffer.from('root:x:0:\n'));
    cpio.file('etc/hosts', Buffer.from('127.0.0.1 localhost\n'));
    // busybox and one symlink per applet
    const bb = join(x, 'bin/busybox');
    cpio.file('bin/busybox', readFileSync(bb), 0o755);
    for (const applet of sh(bb, ['--list-full']).split('\n').filter(Boolean)) {
      if (applet === 'bin/busybox' || applet === 'init' || applet === 'linuxrc') continue;
      cpio.symlink(applet, '/bin/busybox');
    }
    // modules, flat, and the order to insmod them in
    for (const m of order) cpio.file(`lib/modules/wasmap/${m}.ko`, readFileSync(modIndex.get(m)));
    cpio.file('lib/modules/wasmap/order', Buffer.from(order.join('\n') + '\n'));
    // iperf3 and its libraries
    cpio.file('usr/bin/iperf3', readFileSync(join(x, 'usr/bin/iperf3')), 0o755);
    for (const [soname, file] of lib.libs) cpio.file(`lib/x86_64-linux-gnu/${soname}`, readFileSync(file), 0o755);
    cpio.file(lib.loader.replace(/^\//, ''), readFileSync(realpathSync(lib.loader)), 0o755);
    if (lib.loader !== '/lib64/ld-linux-x86-64.so.2') cpio.symlink('lib64/ld-linux-x86-64.so.2', lib.loader);

    const initrd = gzipSync(cpio.finish(), { level: 9 });
    // into build/vm: the files first, image.json last (it is what says "ready")
    mkdirSync(imageDir, { recursive: true });
    const put = (name, data) => { const t = join(imageDir, `.${name}.${process.pid}`); writeFileSync(t, data); renameSync(t, join(imageDir, name)); };
    put('vmlinuz', readFileSync(join(boot, vmlinuz)));
    put('initramfs.cpio.gz', initrd);
    const info = {
      recipe: RECIPE, kernelPackage: kpkg, kernelVersion: kver, modules: order,
      libraries: [...lib.libs.keys()], loader: lib.loader, initrdBytes: initrd.length,
      packages: debs.map((d) => basename(d)), built: new Date().toISOString(), buildMs: Date.now() - t0,
    };
    put('image.json', JSON.stringify(info, null, 2) + '\n');
    log(`vm-image: built ${kpkg} (${kver}), initramfs ${(initrd.length / 1048576).toFixed(1)} MiB, modules ${order.join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return info;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** One build at a time, also across processes: a lock directory holding the builder's pid. */
async function withLock(fn) {
  mkdirSync(dirname(imageDir), { recursive: true });
  const lock = `${imageDir}.lock`;
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try { mkdirSync(lock); writeFileSync(join(lock, 'pid'), String(process.pid)); break; } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let pid = 0;
      try { pid = Number(readFileSync(join(lock, 'pid'), 'utf8')); } catch { /* being written */ }
      let alive = true;
      if (pid) { try { process.kill(pid, 0); } catch { alive = false; } }
      else if (Date.now() - statSync(lock, { throwIfNoEntry: false })?.mtimeMs > 10_000) alive = false;
      if (!alive) { rmSync(lock, { recursive: true, force: true }); continue; }
      if (Date.now() > deadline) throw new Error(`vm-image: ${lock} held by pid ${pid} for too long`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try { return await fn(); } finally { rmSync(lock, { recursive: true, force: true }); }
}

/**
 * The guest image, built on first use. `log` receives progress lines.
 * @param {{ log?: (line: string) => void, force?: boolean }} [opts]
 * @returns {Promise<{ kernel: string, initrd: string, info: object, built: boolean }>}
 */
export async function ensureImage({ log = () => {}, force = false } = {}) {
  const paths = () => ({ kernel: join(imageDir, 'vmlinuz'), initrd: join(imageDir, 'initramfs.cpio.gz'), info: JSON.parse(readFileSync(meta, 'utf8')) });
  if (!force && imageReady()) return { ...paths(), built: false };
  return withLock(async () => {
    if (!force && imageReady()) return { ...paths(), built: false }; // another process made it meanwhile
    build(log);
    return { ...paths(), built: true };
  });
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const r = await ensureImage({ log: (l) => console.error(l), force: process.argv.includes('--force') });
    console.log(`kernel ${r.kernel}`);
    console.log(`initrd ${r.initrd}`);
    if (!r.built) console.error(`vm-image: cached (recipe ${RECIPE}, ${r.info.kernelPackage}); --force builds again`);
  } catch (e) {
    console.error(`vm-image: ${e.message}`);
    process.exit(1);
  }
}

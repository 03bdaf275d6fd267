/**
 * Platforms (`os/arch[/variant]`) and choosing one manifest out of an index.
 * Normalisation follows containerd: x64→amd64, aarch64→arm64, arm64's default
 * variant is v8, arm's is v7.
 */
import { UsageError } from './errors.js';

/** An image platform: os, architecture and variant. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

const ARCH_ALIASES: Record<string, string> = {
  x64: 'amd64',
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  ia32: '386',
  i386: '386',
  armhf: 'arm',
  armel: 'arm',
};

// The OCI image spec takes os and architecture values from Go's GOOS and GOARCH lists.
const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const KNOWN_ARCH = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'loong64', 'mips', 'mipsle', 'mips64',
  'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'ppc64', 'ppc64le', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);
const COMPONENT = /^[a-z0-9_.-]{1,32}$/;

/**
 * Parses `linux/arm64`, `linux/arm/v7`, `arm64` (os linux) or `linux` (this
 * host's architecture), as docker does; an unknown os or architecture (a typo
 * like `linux/amd46`) is TSG_USAGE rather than a pull that finds nothing.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  const invalid = (why: string) => new UsageError('TSG_USAGE', `invalid platform ${JSON.stringify(text)}: ${why} (want os/arch[/variant], e.g. linux/arm64)`);
  if (parts.length > 3 || parts.some((p) => !COMPONENT.test(p))) throw invalid('bad form');
  let p: Platform;
  if (parts.length === 1) {
    const one = parts[0]!;
    if (KNOWN_OS.has(one)) p = { os: one, architecture: hostPlatform().architecture };
    else p = { os: 'linux', architecture: one };
  } else p = { os: parts[0]!, architecture: parts[1]!, variant: parts[2] };
  const n = normalizePlatform(p);
  if (!KNOWN_OS.has(n.os)) throw invalid(`unknown operating system ${JSON.stringify(n.os)}`);
  if (!KNOWN_ARCH.has(n.architecture)) throw invalid(`unknown architecture ${JSON.stringify(n.architecture)}`);
  return n;
}

/** A platform with docker's aliases resolved (x86_64 → amd64, aarch64 → arm64; arm64/v8 → arm64, arm → arm/v7). */
export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  let variant = p.variant || undefined;
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  return { os: p.os, architecture, variant };
}

/** The platform of this process (what `docker pull` picks by default). */
export function hostPlatform(): Platform {
  let variant: string | undefined;
  if (process.arch === 'arm') {
    const v = (process.config.variables as { arm_version?: string }).arm_version;
    variant = v ? `v${v}` : undefined;
  }
  return normalizePlatform({ os: process.platform, architecture: process.arch, variant });
}

/** `os/arch[/variant]`, normalised (so arm64/v8 prints as arm64). */
export function formatPlatform(p: Platform): string {
  const n = normalizePlatform(p);
  return [n.os, n.architecture, n.variant].filter(Boolean).join('/');
}

/** True when `candidate` can run where `wanted` is asked for. */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  return w.variant === undefined || c.variant === undefined || w.variant === c.variant;
}

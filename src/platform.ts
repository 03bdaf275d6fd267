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

/** Parses `linux/arm64`, `linux/arm/v7`; os defaults to linux when only an arch is given. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => p.length === 0)) {
    throw new UsageError('TSG_USAGE', `invalid platform ${JSON.stringify(text)} (want os/arch[/variant])`);
  }
  if (parts.length === 1) return normalizePlatform({ os: 'linux', architecture: parts[0]! });
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
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

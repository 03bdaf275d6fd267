/** Debian's skopeo as an independent peer: pushes and inspects with its own code. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** skopeo with a permissive signature policy written next to `dir`. */
export async function skopeo(dir: string, args: string[]): Promise<string> {
  const policy = join(dir, 'skopeo-policy.json');
  if (!fs.existsSync(policy)) {
    fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  }
  const { stdout } = await run('skopeo', ['--policy', policy, ...args], { timeout: 120_000, maxBuffer: 64 << 20 });
  return stdout;
}

/**
 * chainId: the identity of a layer stack.
 *   chainId(L1) = diffId(L1)
 *   chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln))
 * Two images sharing their first layers share those chainIds, so shared
 * layers are unpacked once.
 */
import { type Digest, sha256 } from '../digest.js';

export function chainIds(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

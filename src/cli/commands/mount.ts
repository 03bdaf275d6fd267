/** `tsgraph mount IMAGE|CONTAINER`: a writable container layer on an image, mounted (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { type CommandContext, requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';
import { UsageError } from '../../errors.js';
import type { IdmapOption, MountOptions } from '../../mount/mount-spec.js';
import { parseIdMapping } from '../../mount/idmap.js';

export interface MountFlags {
  name?: string;
  readOnly?: boolean;
  label?: string;
  opt?: string[];
  uidmap?: string[];
  gidmap?: string[];
  userns?: string;
}

/** --uidmap/--gidmap/--userns → an idmap option (a gid map defaults to the uid map, as podman's --uidmap alone does). */
export function idmapFromFlags(flags: Pick<MountFlags, 'uidmap' | 'gidmap' | 'userns'>): IdmapOption | undefined {
  const uid = flags.uidmap ?? [];
  const gid = flags.gidmap ?? [];
  if (flags.userns !== undefined) {
    if (uid.length || gid.length) throw new UsageError('TSG_USAGE', '--userns and --uidmap/--gidmap exclude each other');
    return { userns: flags.userns };
  }
  if (!uid.length && !gid.length) return undefined;
  if (!uid.length) throw new UsageError('TSG_USAGE', '--gidmap needs --uidmap');
  const uidMap = uid.map((m) => parseIdMapping(m, '--uidmap'));
  return { uidMap, gidMap: gid.length ? gid.map((m) => parseIdMapping(m, '--gidmap')) : uidMap };
}

export async function mount(ctx: CommandContext, target: string, flags: MountFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const options: MountOptions = {
    readOnly: flags.readOnly,
    label: flags.label,
    overlayOptions: flags.opt?.length ? flags.opt : undefined,
    idmap: idmapFromFlags(flags),
  };
  const store = await requireStore(g, target);
  try {
    const { container, path } = await store.mount(target, { ...options, name: flags.name, signal: ctx.signal });
    if (g.json) printJson({ name: container.name, id: container.id, image: container.image, driver: container.driver, readOnly: container.readOnly, path });
    else writeOut(`${path}\n`);
  } finally {
    await store.close();
  }
}

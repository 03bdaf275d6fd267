/**
 * zod schemas for what tsgraph parses from untrusted sources: descriptors,
 * manifests, indexes and image configs. Unknown fields are kept (loose objects)
 * so nothing an image says is dropped when tsgraph rewrites a config.
 * Bytes are always kept as received; digests are computed on the bytes, never
 * on a re-serialisation.
 */
import { z } from 'zod';
import { isDigest, type Digest } from '../digest.js';
import { invalidManifest } from './errors.js';

const digestSchema = z.string().refine(isDigest, { message: 'not a sha256 digest' }) as unknown as z.ZodType<Digest>;

export const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
});

export const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});
/** An OCI content descriptor: media type, digest and size of a blob (plus platform, annotations). */
export type Descriptor = z.infer<typeof descriptorSchema>;

export const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** An OCI / Docker v2 image manifest: config and layer descriptors. */
export type Manifest = z.infer<typeof manifestSchema>;

export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** An OCI image index / Docker manifest list: one manifest per platform. */
export type Index = z.infer<typeof indexSchema>;

export const imageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  created: z.string().optional(),
  author: z.string().optional(),
  config: z
    .looseObject({
      User: z.string().optional(),
      Env: z.array(z.string()).nullable().optional(),
      Entrypoint: z.array(z.string()).nullable().optional(),
      Cmd: z.array(z.string()).nullable().optional(),
      WorkingDir: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullable().optional(),
      ExposedPorts: z.record(z.string(), z.object({})).nullable().optional(),
      Volumes: z.record(z.string(), z.object({})).nullable().optional(),
      StopSignal: z.string().optional(),
    })
    .optional(),
  rootfs: z.looseObject({
    type: z.literal('layers'),
    diff_ids: z.array(digestSchema),
  }),
  history: z
    .array(
      z.looseObject({
        created: z.string().optional(),
        created_by: z.string().optional(),
        author: z.string().optional(),
        comment: z.string().optional(),
        empty_layer: z.boolean().optional(),
      }),
    )
    .optional(),
});
/** An OCI image config: platform, run config (Entrypoint, Cmd, Env, …), rootfs diff_ids and history. */
export type ImageConfig = z.infer<typeof imageConfigSchema>;

/** Parses JSON bytes; throws TSG_INVALID_MANIFEST naming `what`. */
export function parseJsonValue(bytes: Uint8Array, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw invalidManifest(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const depth = jsonDepth(value, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) throw invalidManifest(`${what} nests deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/**
 * No OCI document nests more than a handful of levels; an image author's
 * 200,000 nested arrays in an unknown config field parse, but every later
 * recursive walk (zod, inspect's printer, templates) would overflow the stack.
 */
const MAX_JSON_DEPTH = 64;

/** The nesting depth of `value`, counted iteratively (no recursion), stopping past `limit`. */
function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) max = d;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
  }
  return max;
}

/** Checks an already parsed value against a schema; throws TSG_INVALID_MANIFEST naming `what`. */
export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw invalidManifest(`${what} is malformed${where}: ${issue?.message ?? 'invalid'}`, {
      data: { issues: result.error.issues.slice(0, 5).map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return result.data;
}

/** Parses JSON bytes with a schema; throws TSG_INVALID_MANIFEST naming `what`. */
export function parseJson<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  return validate(schema, parseJsonValue(bytes, what), what);
}

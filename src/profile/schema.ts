/**
 * The shape of a profile file (zod). Strict: an unknown key is an error, because a typo
 * (`exlcude`) silently ignored would widen the tunnel. Values are checked further in
 * parse.ts (prefixes, ranges) where positions are known.
 */
import { z } from 'zod';

const portOrRange = z.union([z.number().int(), z.string()]);
const stringList = z.array(z.string());

export const profileSchema = z
  .object({
    // Required unless proxy_port is set (parse.ts says so with a position).
    interface: z.string().optional(),
    table: z.number().int().optional(),
    priority: z.number().int().optional(),
    protocols: stringList.optional(),
    include: stringList.optional(),
    exclude: stringList.optional(),
    include_files: stringList.optional(),
    exclude_files: stringList.optional(),
    dports: z.array(portOrRange).optional(),
    sports: z.array(portOrRange).optional(),
    uids: z.array(portOrRange).optional(),
    families: stringList.optional(),
    on_down: z.string().optional(),
    exclude_connected: z.boolean().optional(),
    mode: z.string().optional(),
    fwmark: z.number().int().optional(),
    fwmark_mask: z.number().int().optional(),
    description: z.string().optional(),
    apps: stringList.optional(),
    exclude_apps: stringList.optional(),
    include_domains: stringList.optional(),
    exclude_domains: stringList.optional(),
    from: stringList.optional(),
    masquerade: z.boolean().optional(),
    counters: z.boolean().optional(),
    proxy_port: z.number().int().optional(),
    proxy_address: z.union([z.string(), stringList]).optional(),
    bypass_uids: z.array(portOrRange).optional(),
    bypass_mark: z.number().int().optional(),
  })
  .strict();

export type RawProfile = z.infer<typeof profileSchema>;

export const PROFILE_KEYS = Object.keys(profileSchema.shape);

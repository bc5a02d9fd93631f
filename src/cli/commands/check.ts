/** `wgsplit check [FILE...]`: validate profiles without touching the kernel. */
import { loadProfileDir, loadProfileFiles } from '../../profile/load.js';
import type { Context } from '../context.js';

export async function check(ctx: Context): Promise<number> {
  const files = ctx.args.positionals;
  const profiles = files.length ? loadProfileFiles(files) : loadProfileDir(ctx.args.config).profiles;
  if (ctx.args.json) ctx.out(JSON.stringify({ ok: true, profiles: profiles.map((p) => ({ name: p.name, file: p.file })) }) + '\n');
  else if (!ctx.args.quiet) ctx.out(`ok: ${profiles.length} profile${profiles.length === 1 ? '' : 's'} valid${profiles.length ? ' (' + profiles.map((p) => p.name).join(', ') + ')' : ''}\n`);
  return 0;
}

/** `wgsplit check [FILE...]`: validate profiles without touching the kernel. */
import { loadProfileDir, loadProfileFiles } from '../../profile/load.js';
import type { Context } from '../context.js';
import { WgsplitError } from '../../errors.js';

export async function check(ctx: Context): Promise<number> {
  const files = ctx.args.positionals;
  let profiles;
  try {
    // Same ownership rule as apply (as root), so check never passes what apply refuses.
    profiles = files.length ? loadProfileFiles(files, { checkPerms: true }) : loadProfileDir(ctx.args.config).profiles;
  } catch (e) {
    if (!ctx.args.json || !(e instanceof WgsplitError)) throw e;
    const problems = e.problems.length ? e.problems : [{ file: ctx.args.config, line: 1, col: 1, message: e.message }];
    ctx.out(JSON.stringify({ ok: false, problems }) + '\n');
    return 2;
  }
  if (ctx.args.json) ctx.out(JSON.stringify({ ok: true, profiles: profiles.map((p) => ({ name: p.name, file: p.file })) }) + '\n');
  else if (!ctx.args.quiet) ctx.out(`ok: ${profiles.length} profile${profiles.length === 1 ? '' : 's'} valid${profiles.length ? ' (' + profiles.map((p) => p.name).join(', ') + ')' : ''}\n`);
  return 0;
}

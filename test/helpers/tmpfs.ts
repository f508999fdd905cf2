// A small tmpfs for the full-disk tests: mounted on a fresh directory (root only), grown on
// demand, unmounted and removed at the end. Where mounting is not permitted, says why, so that
// the test can skip with that reason.
import { execFile } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type Tmpfs = { dir: string } | { skip: string };

/** Mounts a tmpfs of `mb` MB (mode 0700) on a fresh directory, or returns why it cannot. */
export async function mountTmpfs(mb: number, prefix = 'barmants-fulldisk-'): Promise<Tmpfs> {
  if (process.getuid?.() !== 0) return { skip: 'mounting a tmpfs needs root' };
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0700`, 'tmpfs', dir]);
    return { dir };
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    return { skip: `mount -t tmpfs is not permitted here: ${(err as Error).message.trim().split('\n').pop()}` };
  }
}

/** Gives the tmpfs at `dir` a new size (it keeps its content). */
export async function resizeTmpfs(dir: string, mb: number): Promise<void> {
  await run('mount', ['-o', `remount,size=${mb}m`, dir]);
}

/** Unmounts (lazily if busy) and removes the directory; a skipped or absent mount is fine. */
export async function unmountTmpfs(t: Tmpfs | undefined): Promise<void> {
  if (!t || !('dir' in t)) return;
  await run('umount', [t.dir]).catch(() => run('umount', ['-l', t.dir]));
  await rmdir(t.dir).catch(() => undefined);
}

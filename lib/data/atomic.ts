import fs from 'node:fs';
import path from 'node:path';
import { StenosisError } from '../errors';

/** Writes a file through a temporary name in the same folder and a rename: never half a file in place. */
export function writeFileAtomic(file: string, contents: string | Uint8Array): void {
  const folder = path.dirname(file);
  fs.mkdirSync(folder, { recursive: true });
  const temporary = path.join(folder, `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    fs.writeFileSync(temporary, contents);
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw new StenosisError('ERR_OUTPUT', `cannot write ${file}: ${(error as Error).message}`);
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers';

function loadWith(addonPath: string): () => unknown {
  let load: () => unknown = () => undefined;
  jest.isolateModules(() => {
    process.env.STENOSIS_ADDON_PATH = addonPath;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    load = require('../../lib/native/loader').loadAddon;
  });
  return load;
}

describe('addon loading', () => {
  const saved = process.env.STENOSIS_ADDON_PATH;
  afterEach(() => {
    if (saved === undefined) delete process.env.STENOSIS_ADDON_PATH;
    else process.env.STENOSIS_ADDON_PATH = saved;
  });

  test('a missing addon gives one message saying what to run', () => {
    const load = loadWith('/nonexistent/stenosis.node');
    expect(load).toThrow(/could not be loaded from \/nonexistent\/stenosis.node\.\nIt has not been built/);
    expect(load).toThrow(/bash scripts\/install-system-deps\.sh/);
    expect(load).toThrow(/npm rebuild lumbar-stenosis/);
  });

  test('a file that is not a loadable addon says why and how to rebuild', () => {
    const dir = tempDir('loader');
    const file = path.join(dir, 'stenosis.node');
    fs.writeFileSync(file, 'not an ELF file');
    const load = loadWith(file);
    expect(load).toThrow(expect.objectContaining({ code: 'ERR_ADDON_LOAD' }));
    expect(load).toThrow(/Rebuild it against this Node\.js: npm rebuild lumbar-stenosis/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

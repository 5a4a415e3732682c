// libtorch discovery for both builds (cmake/FindLibtorch.cmake and scripts/libtorch-config.js for node-gyp), on
// made-up libtorch folders laid out as a pip wheel's: a CUDA libtorch is linked directly (its TorchConfig.cmake
// would ask for a CUDA toolkit), with its CUDA libraries kept by --no-as-needed, and the C++ standard follows
// what the headers ask for.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from '../helpers';

interface FakeTorch {
  cuda: boolean;
  cxx20: boolean;
  abi?: 0 | 1;
}

function fakeLibtorch(root: string, options: FakeTorch): string {
  const write = (relative: string, text = '') => {
    fs.mkdirSync(path.dirname(path.join(root, relative)), { recursive: true });
    fs.writeFileSync(path.join(root, relative), text);
  };
  const abi =
    options.abi === undefined ? '' : `set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${options.abi}")\n`;
  // A TorchConfig.cmake that cannot be used: the CUDA path must not include it.
  write(
    'share/cmake/Torch/TorchConfig.cmake',
    `${abi}message(FATAL_ERROR "TorchConfig.cmake was included")\n`,
  );
  write('share/cmake/Torch/TorchConfigVersion.cmake', 'set(PACKAGE_VERSION "2.14.1")\n');
  write(
    'include/torch/headeronly/version.h',
    '#define TORCH_VERSION_MAJOR 2\n#define TORCH_VERSION_MINOR 14\n#define TORCH_VERSION_PATCH 1\n',
  );
  write(
    'include/torch/csrc/api/include/torch/all.h',
    options.cxx20
      ? '#error C++20 or later compatible compiler is required to use PyTorch.\n'
      : '#pragma once\n',
  );
  const libs = ['torch', 'torch_cpu', 'c10', ...(options.cuda ? ['torch_cuda', 'c10_cuda'] : [])];
  for (const name of libs) write(`lib/lib${name}.so`);
  return root;
}

function config(command: string, libtorch: string) {
  return spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'libtorch-config.js'), command], {
    encoding: 'utf8',
    env: { ...process.env, LIBTORCH: libtorch, Torch_DIR: '' },
  });
}

describe('libtorch discovery', () => {
  const dir = tempDir('libtorch-discovery');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('node-gyp settings for a CUDA wheel: CUDA libraries kept, C++20, the stated ABI, the version', () => {
    const root = fakeLibtorch(path.join(dir, 'cuda'), { cuda: true, cxx20: true, abi: 0 });
    expect(config('cuda', root).stdout.trim()).toBe('1');
    expect(config('std', root).stdout.trim()).toBe('-std=c++20');
    expect(config('cflags', root).stdout.trim()).toBe('-D_GLIBCXX_USE_CXX11_ABI=0');
    const libs = config('libs', root).stdout.trim();
    expect(libs).toContain(`-Wl,-rpath,${path.join(root, 'lib')}`);
    expect(libs).toMatch(/--push-state,--no-as-needed (-l\S+ )*-ltorch_cuda -lc10_cuda -Wl,--pop-state$/);
    expect(config('describe', root).stdout).toMatch(/^libtorch 2\.14\.1 from LIBTORCH=/);
  });

  test('node-gyp settings for a CPU libtorch with C++17 headers, and a wrong LIBTORCH named', () => {
    const root = fakeLibtorch(path.join(dir, 'cpu'), { cuda: false, cxx20: false });
    expect(config('cuda', root).stdout.trim()).toBe('0');
    expect(config('std', root).stdout.trim()).toBe('-std=c++17');
    expect(config('libs', root).stdout).not.toContain('cuda');
    const missing = config('libs', path.join(dir, 'nowhere'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(
      `${path.join(dir, 'nowhere', 'share', 'cmake', 'Torch', 'TorchConfig.cmake')}`,
    );
    const usage = config('bogus', root);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/usage: .*std\|cuda/);
  });

  test('CMake imports a CUDA libtorch without its TorchConfig.cmake, links it kept, in C++20', () => {
    const root = fakeLibtorch(path.join(dir, 'cmake-cuda'), { cuda: true, cxx20: true });
    const build = path.join(dir, 'cmake-build');
    const out = execFileSync(
      'cmake',
      ['-S', ROOT, '-B', build, '-DSTENOSIS_BUILD_ADDON=OFF', `-DLIBTORCH=${root}`, '-G', 'Unix Makefiles'],
      { encoding: 'utf8', env: { ...process.env, LIBTORCH: '', Torch_DIR: '' } },
    );
    expect(out).toContain(
      `libtorch: 2.14.1 from LIBTORCH=${root}; libraries in ${path.join(root, 'lib')}; CUDA ON; C++20`,
    );
    // The link line of stenosis-tool keeps the CUDA libraries and uses C++20.
    const link = fs.readFileSync(path.join(build, 'CMakeFiles', 'stenosis-tool.dir', 'link.txt'), 'utf8');
    const lib = path.join(root, 'lib');
    expect(link).toContain(
      `-Wl,--push-state,--no-as-needed,${lib}/libtorch_cuda.so,${lib}/libc10_cuda.so,--pop-state`,
    );
    // CMake writes the other libraries as paths or as -L/-l pairs.
    expect(
      link.includes(`${lib}/libtorch_cpu.so`) || (link.includes(`-L${lib}`) && link.includes('-ltorch_cpu')),
    ).toBe(true);
    const flags = fs.readFileSync(path.join(build, 'CMakeFiles', 'stenosis_core.dir', 'flags.make'), 'utf8');
    expect(flags).toMatch(/-std=(gnu|c)\+\+20/);
    expect(flags).toContain('-DSTENOSIS_WITH_CUDA=1');
    expect(flags).toContain(path.join(root, 'include', 'torch', 'csrc', 'api', 'include'));
  });
});

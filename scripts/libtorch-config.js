#!/usr/bin/env node
// Prints libtorch build settings for node-gyp (binding.gyp). No dependencies, nothing is downloaded.
//
// Discovery order is the same as cmake/FindLibtorch.cmake:
//   1. env LIBTORCH (a libtorch root folder) or env Torch_DIR (its share/cmake/Torch folder)
//   2. the libtorch inside a Python torch package ($STENOSIS_PYTHON, python3, /usr/bin/python3), used only when
//      it ships share/cmake/Torch/TorchConfig.cmake (pip wheels do; Debian's python3-torch does not)
//   3. the system's (Debian libtorch-dev: headers in /usr/include, libraries in /usr/lib/<multiarch triplet>)
//
// Usage: node scripts/libtorch-config.js <include|libdir|libs|cflags|std|cuda|describe>
//   include   space-separated include folders
//   libdir    the folder holding libtorch_cpu.so
//   libs      linker flags (-L, rpath, -ltorch -ltorch_cpu -lc10 [-ltorch_cuda -lc10_cuda])
//   cflags    -D_GLIBCXX_USE_CXX11_ABI=<0|1>
//   std       -std=c++20 where the libtorch's headers require it (they say so in torch/all.h), else -std=c++17
//   cuda      1 when libtorch_cuda.so is present, else 0
//   describe  human-readable summary
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const SUBCOMMANDS = ['include', 'libdir', 'libs', 'cflags', 'std', 'cuda', 'describe'];

class ConfigError extends Error {}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDir(p) {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

// Reads -D_GLIBCXX_USE_CXX11_ABI=<0|1> from a TorchConfig.cmake (official libtorch builds set it there).
function abiFromTorchConfig(configFile) {
  try {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(fs.readFileSync(configFile, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function versionFromHeaders(includeDirs) {
  for (const dir of includeDirs) {
    const header = path.join(dir, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
    const candidates = [
      header,
      path.join(dir, 'torch', 'version.h'),
      path.join(dir, 'torch', 'headeronly', 'version.h'),
    ];
    for (const candidate of candidates) {
      try {
        const text = fs.readFileSync(candidate, 'utf8');
        const part = (name) => (new RegExp(`#define\\s+TORCH_VERSION_${name}\\s+(\\d+)`).exec(text) || [])[1];
        if (part('MAJOR') !== undefined) return [part('MAJOR'), part('MINOR'), part('PATCH')].join('.');
      } catch {
        // try the next one
      }
    }
  }
  return 'unknown';
}

// Step 1: LIBTORCH or Torch_DIR. Like CMake, a given but wrong folder is an error, not a fall-through.
function fromEnvironment() {
  let root;
  let source;
  let configFile;
  let libdir = null;
  if (process.env.LIBTORCH) {
    root = path.resolve(process.env.LIBTORCH);
    source = `LIBTORCH=${process.env.LIBTORCH}`;
    configFile = path.join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
  } else if (process.env.Torch_DIR) {
    const torchDir = path.resolve(process.env.Torch_DIR);
    root = path.resolve(torchDir, '..', '..', '..');
    source = `Torch_DIR=${process.env.Torch_DIR}`;
    configFile = path.join(torchDir, 'TorchConfig.cmake');
    // Debian's layout is <prefix>/lib/<triplet>/cmake/Torch (four levels up, libraries in lib/<triplet>).
    const debianLibdir = path.resolve(torchDir, '..', '..');
    if (
      !isFile(path.join(root, 'lib', 'libtorch_cpu.so')) &&
      isFile(path.join(debianLibdir, 'libtorch_cpu.so'))
    ) {
      root = path.resolve(debianLibdir, '..', '..');
      libdir = debianLibdir;
    }
  } else {
    return null;
  }
  if (!isFile(configFile)) {
    throw new ConfigError(
      `libtorch: ${source} was given but ${configFile} does not exist. Point LIBTORCH at a libtorch folder ` +
        "(it holds share/cmake/Torch) or unset it to use a Python torch or Debian's libtorch-dev.",
    );
  }
  if (!libdir) libdir = path.join(root, 'lib');
  if (!isFile(path.join(libdir, 'libtorch_cpu.so'))) {
    throw new ConfigError(`libtorch: ${source} was given but ${libdir}/libtorch_cpu.so does not exist.`);
  }
  const abi = abiFromTorchConfig(configFile);
  return {
    source,
    root,
    includeDirs: [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')],
    libdir,
    abi: abi === null ? 1 : abi,
  };
}

// Step 2: a Python torch package that ships its libtorch (share/cmake/Torch/TorchConfig.cmake).
function fromPython() {
  const candidates = [];
  if (process.env.STENOSIS_PYTHON) candidates.push(process.env.STENOSIS_PYTHON);
  candidates.push('python3', '/usr/bin/python3');
  const code =
    'import torch, os\n' +
    'print(os.path.dirname(torch.__file__))\n' +
    "print(int(bool(getattr(torch._C, '_GLIBCXX_USE_CXX11_ABI', True))))\n";
  const tried = new Set();
  for (const py of candidates) {
    if (tried.has(py)) continue;
    tried.add(py);
    const r = spawnSync(py, ['-c', code], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 120000,
    });
    if (r.error || r.status !== 0 || !r.stdout) continue;
    const lines = r.stdout.trim().split(/\r?\n/);
    if (lines.length < 2) continue;
    const dir = lines[lines.length - 2].trim();
    const abi = Number(lines[lines.length - 1].trim()) ? 1 : 0;
    if (!isFile(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'))) continue;
    const libdir = path.join(dir, 'lib');
    if (!isFile(path.join(libdir, 'libtorch_cpu.so'))) continue;
    return {
      source: `Python torch package (${dir}, via ${py})`,
      root: dir,
      includeDirs: [path.join(dir, 'include'), path.join(dir, 'include', 'torch', 'csrc', 'api', 'include')],
      libdir,
      abi,
    };
  }
  return null;
}

const ARCH_TRIPLETS = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  loong64: 'loongarch64-linux-gnu',
  ia32: 'i386-linux-gnu',
  arm: 'arm-linux-gnueabihf',
};

// Step 3: Debian's libtorch-dev.
function fromSystem() {
  const apiInclude = '/usr/include/torch/csrc/api/include';
  if (!isFile(path.join(apiInclude, 'torch', 'torch.h'))) return null;
  const libCandidates = [];
  if (ARCH_TRIPLETS[process.arch]) libCandidates.push(path.join('/usr/lib', ARCH_TRIPLETS[process.arch]));
  try {
    for (const entry of fs.readdirSync('/usr/lib').sort()) {
      if (/-linux-/.test(entry)) libCandidates.push(path.join('/usr/lib', entry));
    }
  } catch {
    // no /usr/lib
  }
  libCandidates.push('/usr/lib', '/usr/lib64');
  const libdir = libCandidates.find((d) => isDir(d) && isFile(path.join(d, 'libtorch_cpu.so')));
  if (!libdir) return null;
  return {
    source: 'system (Debian libtorch-dev)',
    root: '/usr',
    includeDirs: ['/usr/include', apiInclude],
    libdir,
    abi: 1,
  };
}

function findLibtorch() {
  const found = fromEnvironment() || fromPython() || fromSystem();
  if (!found) {
    throw new ConfigError(
      'libtorch was not found. Do one of:\n' +
        "  - install Debian's libtorch with: bash scripts/install-system-deps.sh\n" +
        '  - set LIBTORCH to an unpacked libtorch folder (the one holding share/cmake/Torch)\n' +
        '  - set Torch_DIR to a folder holding TorchConfig.cmake\n' +
        '  - install a Python torch package (one that ships share/cmake/Torch) that python3 can import',
    );
  }
  found.cuda = isFile(path.join(found.libdir, 'libtorch_cuda.so'));
  return found;
}

function cxxStandard(t) {
  for (const dir of t.includeDirs) {
    try {
      const text = fs.readFileSync(path.join(dir, 'torch', 'all.h'), 'utf8');
      return /C\+\+20 or later/.test(text) ? '-std=c++20' : '-std=c++17';
    } catch {
      // try the next folder
    }
  }
  return '-std=c++17';
}

function libs(t) {
  // --no-as-needed: nothing in the addon may reference libtorch/libtorch_cuda symbols directly, and on toolchains
  // that default to --as-needed (Ubuntu) they would be dropped, leaving CUDA unregistered at run time.
  const names = ['torch', 'torch_cpu', 'c10'];
  if (t.cuda) names.push('torch_cuda', 'c10_cuda');
  return [
    `-L${t.libdir}`,
    `-Wl,-rpath,${t.libdir}`,
    '-Wl,--push-state,--no-as-needed',
    ...names.map((n) => `-l${n}`),
    '-Wl,--pop-state',
  ].join(' ');
}

function main(argv) {
  const cmd = argv[0];
  if (!SUBCOMMANDS.includes(cmd)) {
    process.stderr.write(`usage: node scripts/libtorch-config.js <${SUBCOMMANDS.join('|')}>\n`);
    return 2;
  }
  let t;
  try {
    t = findLibtorch();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`libtorch-config: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  let out;
  switch (cmd) {
    case 'include':
      out = t.includeDirs.join(' ');
      break;
    case 'libdir':
      out = t.libdir;
      break;
    case 'libs':
      out = libs(t);
      break;
    case 'cflags':
      out = `-D_GLIBCXX_USE_CXX11_ABI=${t.abi}`;
      break;
    case 'std':
      out = cxxStandard(t);
      break;
    case 'cuda':
      out = t.cuda ? '1' : '0';
      break;
    case 'describe':
      out = [
        `libtorch ${versionFromHeaders(t.includeDirs)} from ${t.source}`,
        `  include: ${t.includeDirs.join(' ')}`,
        `  libdir:  ${t.libdir}`,
        `  libs:    ${libs(t)}`,
        `  cflags:  -D_GLIBCXX_USE_CXX11_ABI=${t.abi} ${cxxStandard(t)}`,
        `  cuda:    ${t.cuda ? 'yes' : 'no'}`,
      ].join('\n');
      break;
  }
  process.stdout.write(out + '\n');
  return 0;
}

process.exitCode = main(process.argv.slice(2));

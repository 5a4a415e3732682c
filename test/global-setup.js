// Exports the small random-weight ResNet-18 that most tests use, once, into test/.cache/models.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

module.exports = async function globalSetup() {
  const root = path.resolve(__dirname, '..');
  const models = path.join(root, 'test', '.cache', 'models');
  if (fs.existsSync(path.join(models, 'resnet18.pt')) && fs.existsSync(path.join(models, 'resnet18.json')))
    return;
  fs.mkdirSync(models, { recursive: true });
  const python = process.env.STENOSIS_PYTHON || '/usr/bin/python3';
  execFileSync(
    python,
    [
      path.join(root, 'scripts', 'export_backbones.py'),
      'resnet18',
      '--out',
      models,
      '--input-size',
      '64',
      '--seed',
      '0',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
};

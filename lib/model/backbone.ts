import fs from 'node:fs';
import path from 'node:path';
import {
  checkBoolean,
  checkInteger,
  checkKnownKeys,
  invalidArgument,
  isPlainObject,
  native,
  StenosisError,
} from '../errors';
import { loadAddon, packageRoot } from '../native/loader';
import type { NativeBackbone } from '../native/types';
import { checkDevice, type DeviceSpec } from '../runtime';
import { checkImages, type ImageBatch } from './tensors';
import { LIMITS } from '../limits';

/** The JSON file written beside each exported backbone by scripts/export_backbones.py. */
export interface BackboneMetadata {
  format: 'lumbar-stenosis-backbone';
  formatVersion: number;
  name: string;
  architecture: string;
  source: string;
  featureDim: number;
  inputSize: number;
  mean: [number, number, number];
  std: [number, number, number];
  convolutional: boolean;
  parameterTensors: number;
  parameterNames?: string[];
  pretrained: boolean;
  weights?: string | null;
  torchVersion: string;
  exportMethod?: string;
}

/** Names the CLI and `Backbone.load` accept in place of a file, once exported into the models folder. */
export const BACKBONE_NAMES = [
  'vit',
  'swin',
  'beit',
  'efficientnet',
  'resnet152',
  'convnext',
  'resnet18',
] as const;

export interface BackboneLoadOptions {
  /** cpu (default), cuda or cuda:N. */
  device?: DeviceSpec;
  /** Square input size in pixels; default: the metadata's inputSize, else 224. */
  inputSize?: number;
  /** Folder with registry.json, for names like 'resnet152'; default STENOSIS_MODELS_DIR or <package>/models. */
  modelsDir?: string;
}

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** The default folder of exported backbones. */
export function defaultModelsDir(): string {
  return process.env.STENOSIS_MODELS_DIR ?? path.join(packageRoot(), 'models');
}

/** Resolves a registry name (e.g. 'resnet152') or a path to a TorchScript file path. */
export function resolveBackboneFile(nameOrPath: string, modelsDir = defaultModelsDir()): string {
  const looksLikePath =
    nameOrPath.includes('/') || nameOrPath.includes(path.sep) || nameOrPath.endsWith('.pt');
  if (looksLikePath) return path.resolve(nameOrPath);
  const registryFile = path.join(modelsDir, 'registry.json');
  let registry: { models?: Record<string, { file: string }> } = {};
  if (fs.existsSync(registryFile)) {
    try {
      registry = JSON.parse(fs.readFileSync(registryFile, 'utf8'));
    } catch (error) {
      throw new StenosisError(
        'ERR_MODEL_FILE',
        `Registry ${registryFile} is not valid JSON: ${(error as Error).message}`,
      );
    }
  }
  const entry = registry.models?.[nameOrPath];
  if (entry) return path.resolve(modelsDir, entry.file);
  const known = Object.keys(registry.models ?? {});
  throw new StenosisError(
    'ERR_MODEL_FILE',
    `Backbone '${nameOrPath}' is not in ${registryFile}` +
      (known.length ? ` (it has: ${known.join(', ')})` : ' (no backbone exported there yet)') +
      `. Export it with: bash scripts/export_backbones.sh --models ${nameOrPath} --out ${modelsDir}` +
      `, or pass the path of a TorchScript file.`,
  );
}

/** Reads `<file without .pt>.json` beside a backbone file; null when there is none. */
export function readBackboneMetadata(file: string): BackboneMetadata | null {
  const metadataFile = file.replace(/\.pt$/, '') + '.json';
  if (!fs.existsSync(metadataFile)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(metadataFile, 'utf8'));
  } catch (error) {
    throw new StenosisError(
      'ERR_MODEL_FILE',
      `Backbone metadata ${metadataFile} is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (!isPlainObject(parsed) || (parsed as { format?: unknown }).format !== 'lumbar-stenosis-backbone') {
    throw new StenosisError(
      'ERR_MODEL_FILE',
      `${metadataFile} is not backbone metadata (expected format 'lumbar-stenosis-backbone')`,
    );
  }
  return parsed as unknown as BackboneMetadata;
}

function majorMinor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/**
 * A TorchScript image backbone returning pooled features, loaded onto a device. Every method that touches the
 * model runs on the native engine thread and returns a Promise.
 */
export class Backbone {
  /** @internal */
  readonly native: NativeBackbone;
  /** Metadata from the export (synthesised from the probe when the file has none). */
  readonly metadata: BackboneMetadata;
  /** Notes about the load the caller may want to show (e.g. a torch version mismatch). */
  readonly warnings: string[];

  private constructor(nativeBackbone: NativeBackbone, metadata: BackboneMetadata, warnings: string[]) {
    this.native = nativeBackbone;
    this.metadata = metadata;
    this.warnings = warnings;
  }

  /**
   * Loads a backbone from a TorchScript file or a registry name and probes its feature dimension.
   * @throws StenosisError ERR_MODEL_FILE (missing, not TorchScript, wrong output shape), ERR_CUDA_UNAVAILABLE.
   */
  static async load(nameOrPath: string, options: BackboneLoadOptions = {}): Promise<Backbone> {
    if (typeof nameOrPath !== 'string' || nameOrPath.length === 0) {
      throw invalidArgument('a backbone file path or name', 'nameOrPath', nameOrPath);
    }
    if (!isPlainObject(options)) throw invalidArgument('an options object', 'options', options);
    checkKnownKeys(options, 'Backbone.load options', ['device', 'inputSize', 'modelsDir']);
    const device = checkDevice(options.device ?? 'cpu');
    const file = resolveBackboneFile(nameOrPath, options.modelsDir);
    if (!fs.existsSync(file))
      throw new StenosisError('ERR_MODEL_FILE', `Backbone file ${file} does not exist`);
    const metadata = readBackboneMetadata(file);
    const inputSize = checkInteger(
      options.inputSize ?? metadata?.inputSize ?? 224,
      'inputSize',
      LIMITS.inputSize.min,
      LIMITS.inputSize.max,
    );
    const torchVersion = loadAddon().versions.torch;
    const warnings: string[] = [];
    if (metadata && majorMinor(metadata.torchVersion) !== majorMinor(torchVersion)) {
      warnings.push(
        `${path.basename(file)} was exported by torch ${metadata.torchVersion}; this build links libtorch ` +
          `${torchVersion}. Re-export it with the same torch if it fails to load or behaves differently.`,
      );
    }
    let nativeBackbone: NativeBackbone;
    try {
      nativeBackbone = await native(loadAddon().loadBackbone(file, device, inputSize));
    } catch (error) {
      if (warnings.length && error instanceof StenosisError) {
        throw new StenosisError(error.code, `${error.message}\n${warnings.join('\n')}`);
      }
      throw error;
    }
    if (metadata && metadata.featureDim !== nativeBackbone.featureDim) {
      throw new StenosisError(
        'ERR_MODEL_FILE',
        `${file} produces ${nativeBackbone.featureDim} features but its metadata says ${metadata.featureDim}`,
      );
    }
    const resolved: BackboneMetadata = metadata ?? {
      format: 'lumbar-stenosis-backbone',
      formatVersion: 1,
      name: path.basename(file, '.pt'),
      architecture: 'unknown',
      source: 'file',
      featureDim: nativeBackbone.featureDim,
      inputSize,
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      convolutional: false,
      parameterTensors: (await native(nativeBackbone.parameterNames(false))).length,
      pretrained: false,
      torchVersion: 'unknown',
    };
    if (!metadata) warnings.push(`${file} has no metadata JSON beside it; assuming ImageNet normalization.`);
    return new Backbone(nativeBackbone, { ...resolved, inputSize }, warnings);
  }

  /** Length of the pooled feature vector. */
  get featureDim(): number {
    return this.native.featureDim;
  }

  /** Square input size in pixels. */
  get inputSize(): number {
    return this.native.inputSize;
  }

  /** The device the backbone lives on. */
  get device(): string {
    return this.native.device;
  }

  /** The TorchScript file it was loaded from. */
  get path(): string {
    return this.native.path;
  }

  /** Clears requires_grad on every parameter. The train/eval mode is not changed. */
  async freeze(): Promise<void> {
    await native(this.native.freeze());
  }

  /**
   * For inference only (StenosisPredictor does it after loading a checkpoint): eval mode, then TorchScript's
   * optimize_for_inference folds the weights into the graph, merges batch norm into convolutions and fuses
   * operators. Afterwards the backbone has no parameters, stays in eval mode, and a trainer can neither train
   * nor save a model built on it (ERR_STATE).
   */
  async optimizeForInference(): Promise<void> {
    await native(this.native.optimizeForInference());
  }

  /**
   * Freezes everything, then unfreezes the last `n` parameter tensors in registration order (the reference's
   * "last n layers"; n larger than the count unfreezes all, 0 leaves all frozen).
   * @returns the names of the unfrozen tensors.
   */
  async unfreezeLast(n: number): Promise<string[]> {
    checkInteger(n, 'n', 0);
    return native(this.native.unfreezeLast(n));
  }

  /**
   * Freezes everything, then unfreezes all parameters of the last `n` blocks, a block being a module path two
   * levels deep (e.g. 'layer4.2', 'features.7').
   * @returns the names of the unfrozen tensors.
   */
  async unfreezeLastBlocks(n: number): Promise<string[]> {
    checkInteger(n, 'n', 0);
    return native(this.native.unfreezeLastBlocks(n));
  }

  /** Parameter tensor names in registration order (only trainable ones when asked). */
  async parameterNames(trainableOnly = false): Promise<string[]> {
    return native(this.native.parameterNames(checkBoolean(trainableOnly, 'trainableOnly')));
  }

  /** Number of scalar parameters (only trainable ones when asked). */
  async parameterCount(trainableOnly = false): Promise<number> {
    return native(this.native.parameterCount(checkBoolean(trainableOnly, 'trainableOnly')));
  }

  /** Train mode (batch-norm batch statistics, stochastic depth) or eval mode. */
  async setTraining(training: boolean): Promise<void> {
    await native(this.native.setTraining(checkBoolean(training, 'training')));
  }

  async isTraining(): Promise<boolean> {
    return native(this.native.isTraining());
  }

  /**
   * Pooled features of a batch, without autograd, in the backbone's current mode.
   * @returns a [batch, featureDim] row-major Float32Array.
   */
  async features(batch: Pick<ImageBatch, 'images' | 'shape'>): Promise<Float32Array> {
    const { images, shape } = checkImages(batch, 'batch');
    return native(this.native.features(images, shape));
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { writeFileAtomic } from '../data/atomic';
import { StenosisPredictor, submissionCsv } from '../predict/predictor';
import { setNumThreads } from '../runtime';
import { StenosisError } from '../errors';
import type { DataProblem } from '../data/samples';
import type { PrecisionOption } from '../model/classifier';
import { parseArgv, parseDevice, parsePositiveInt, parseThreads, printError } from './options';

export function buildCommand(): Command {
  return new Command('predict.js')
    .description(
      'Write spinal canal stenosis probabilities for every study of a dataset folder (test_images/ or ' +
        'train_images/) in the competition submission format: row_id,normal_mild,moderate,severe, five rows per ' +
        'study. Each study is read from the middle instance of its first Sagittal T2/STIR series, uncropped.',
    )
    .requiredOption(
      '--checkpoint <file>',
      'a checkpoint written by train.js (trained_models/<model>_best.ckpt)',
    )
    .requiredOption('--data <dir>', 'dataset folder with test_images/<study>/<series>/<instance>.dcm')
    .option('--output <file>', 'submission CSV to write', 'submission.csv')
    .option('--backbone <file>', 'backbone TorchScript file (default: the one recorded in the checkpoint)')
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option('--threads <n>', 'libtorch threads (default: all cores; at most 4 times the cores)', parseThreads)
    .option('--batch-size <n>', 'images per forward pass', parsePositiveInt, 16)
    .option(
      '--skip-bad-samples',
      'leave out studies that cannot be read (named on stderr) instead of stopping at the first',
      false,
    )
    .addOption(
      new Option(
        '--precision <kind>',
        "backbone autocast: fp32, bf16, fp16 (CUDA only) or auto (default: the checkpoint's evaluation " +
          'precision; fp32 for an fp16 checkpoint on the CPU)',
      ).choices(['fp32', 'bf16', 'fp16', 'auto']),
    )
    .option(
      '--optimize',
      'TorchScript optimize_for_inference on the backbone (ResNets about 1.3-1.4x faster on the CPU; others not)',
      false,
    );
}

/** Runs the predict command on argv (as process.argv); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const command = buildCommand();
  const exit = parseArgv(command, argv);
  if (exit !== null) return exit;
  const options = command.opts() as {
    checkpoint: string;
    data: string;
    output: string;
    backbone?: string;
    device: 'cpu';
    threads?: number;
    batchSize: number;
    optimize: boolean;
    skipBadSamples: boolean;
    precision?: PrecisionOption;
  };
  const output = path.resolve(options.output);
  if (fs.statSync(output, { throwIfNoEntry: false })?.isDirectory()) {
    process.stderr.write(`error: --output ${output} is a folder; give the submission CSV's file name\n`);
    return 2;
  }
  try {
    if (options.threads) setNumThreads(options.threads);
    const predictor = await StenosisPredictor.load(options.checkpoint, {
      device: options.device,
      backbone: options.backbone,
      batchSize: options.batchSize,
      optimize: options.optimize,
      precision: options.precision,
    });
    for (const warning of predictor.warnings) process.stderr.write(`warning: ${warning}\n`);
    const problems: DataProblem[] = [];
    const predictions = await predictor.predictDataset(options.data, undefined, {
      skipBadStudies: options.skipBadSamples,
      problems,
    });
    for (const problem of problems)
      process.stderr.write(`warning: skipped ${problem.where}: ${problem.message}\n`);
    if (predictions.length === 0) {
      throw new StenosisError('ERR_DATA', `no study of ${options.data} could be read; nothing written`);
    }
    writeFileAtomic(output, submissionCsv(predictions));
    const recorded = predictor.metadata.classifier;
    const checkpointPrecision = recorded.fp32Evaluation ? 'fp32' : (recorded.precision ?? 'fp32');
    process.stdout.write(
      `${predictions.length} studies, ${predictions.length * 5} rows written to ${output} ` +
        `(backbone in ${predictor.precision}` +
        (predictor.memoryFormat === 'channels_last' ? ', channels-last' : '') +
        (predictor.precision === checkpointPrecision
          ? ', as the checkpoint was evaluated'
          : `; the checkpoint was evaluated in ${checkpointPrecision}`) +
        ')' +
        (problems.length ? `; ${problems.length} studies skipped (named above)` : '') +
        '\n',
    );
    return 0;
  } catch (error) {
    printError(error);
    return 1;
  }
}

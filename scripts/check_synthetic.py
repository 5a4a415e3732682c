#!/usr/bin/python3
"""Checks a synthetic RSNA-layout dataset (lib/data/synthetic.ts) with an independent DICOM reader.

Every CSV row must reference an existing study, series folder or file; a sample of the DICOMs must open
with pydicom (pixel_array included) and carry consistent tags; the spinal canal class balance is reported
(and enforced with --strict-balance). PNGs of annotated instances, one per severity, with every labelled
point marked, go to --out so that a person can look at them.

Run with Debian's interpreter, which has pydicom, numpy and PIL:
    /usr/bin/python3 scripts/check_synthetic.py FOLDER --out /tmp/synthetic-png [--strict-balance]
Exits 0 when every check passes, 1 otherwise (listing the problems).
"""

import argparse
import csv
import os
import random
import sys

import numpy as np
import pydicom
from PIL import Image, ImageDraw

LEVELS = ['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1']
SLUGS = ['l1_l2', 'l2_l3', 'l3_l4', 'l4_l5', 'l5_s1']
CONDITIONS = [
    'spinal_canal_stenosis',
    'left_neural_foraminal_narrowing',
    'right_neural_foraminal_narrowing',
    'left_subarticular_stenosis',
    'right_subarticular_stenosis',
]
TRAIN_HEADER = ['study_id'] + [f'{c}_{s}' for c in CONDITIONS for s in SLUGS]
COORDINATE_HEADER = ['study_id', 'series_id', 'instance_number', 'condition', 'level', 'x', 'y']
DESCRIPTION_HEADER = ['study_id', 'series_id', 'series_description']
SEVERITIES = ['Normal/Mild', 'Moderate', 'Severe']
DESCRIPTIONS = {'Sagittal T2/STIR', 'Sagittal T1', 'Axial T2'}
COLOURS = {'Normal/Mild': (60, 230, 60), 'Moderate': (255, 210, 0), 'Severe': (255, 40, 40)}
# Accepted overall fractions of the spinal canal labels with --strict-balance (targets 88 / 7.5 / 5 / 1.5 %).
BALANCE = {'Normal/Mild': (0.82, 0.93), 'Moderate': (0.04, 0.11), 'Severe': (0.025, 0.08), '': (0.003, 0.04)}


def read_csv(path, header, problems):
    """Rows of a CSV as dicts, after checking its header is exactly `header`."""
    if not os.path.isfile(path):
        problems.append(f'{path} is missing')
        return []
    with open(path, newline='') as handle:
        reader = csv.reader(handle)
        found = next(reader, [])
        if found != header:
            problems.append(f'{os.path.basename(path)} header is {found[:8]}..., expected {header[:8]}...')
            return []
        return [dict(zip(header, row)) for row in reader]


def window(pixels):
    """8-bit rendering of an image between its 0.5th and 99.5th percentiles."""
    low, high = np.percentile(pixels, [0.5, 99.5])
    scaled = (pixels.astype(np.float64) - low) / max(high - low, 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def check_dicom(path, description, problems):
    """Opens one file with pydicom and checks the tags a loader relies on; returns the dataset or None."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - any failure to read is a problem to report
        problems.append(f'{path}: pydicom cannot read it: {error}')
        return None
    where = os.path.relpath(path)
    expect = [
        (ds.file_meta.TransferSyntaxUID == '1.2.840.10008.1.2.1', 'transfer syntax is explicit VR LE'),
        (ds.Modality == 'MR', 'Modality is MR'),
        (ds.PhotometricInterpretation == 'MONOCHROME2', 'MONOCHROME2'),
        (ds.BitsAllocated == 16 and ds.BitsStored in (12, 16) and ds.PixelRepresentation == 0, '16-bit unsigned'),
        (pixels.shape == (ds.Rows, ds.Columns), 'pixel_array has Rows x Columns'),
        (int(pixels.max()) < 2 ** ds.BitsStored, 'pixels fit BitsStored'),
        (ds.SeriesDescription == description, f'SeriesDescription is {description}'),
        (int(os.path.basename(path)[:-4]) == int(ds.InstanceNumber), 'file name is the InstanceNumber'),
        (len(ds.PixelSpacing) == 2 and float(ds.PixelSpacing[0]) > 0, 'PixelSpacing'),
        (float(ds.SliceThickness) > 0, 'SliceThickness'),
        (str(ds.SOPInstanceUID).startswith('2.25.'), 'UIDs under 2.25'),
    ]
    orientation = [round(float(v)) for v in ds.ImageOrientationPatient]
    if description.startswith('Sagittal'):
        expect.append((orientation == [0, 1, 0, 0, 0, -1], 'sagittal ImageOrientationPatient'))
    else:
        expect.append((orientation == [1, 0, 0, 0, 1, 0], 'axial ImageOrientationPatient'))
    for ok, what in expect:
        if not ok:
            problems.append(f'{where}: expected {what}')
    return ds


def draw_annotated(path, points, title, out_file, scale):
    """Writes the image at `path` with each (x, y, level, label) marked in its severity's colour."""
    ds = pydicom.dcmread(path)
    image = Image.fromarray(window(ds.pixel_array)).convert('RGB')
    image = image.resize((image.width * scale, image.height * scale), Image.LANCZOS)
    draw = ImageDraw.Draw(image)
    for x, y, level, label in points:
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        r = 3 * scale
        colour = COLOURS[label]
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(1, scale // 2))
        draw.text((cx + r + 4, cy - 6), f'{level} {label}', fill=colour)
    draw.text((4, 4), title, fill=(255, 140, 0))
    image.save(out_file)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', help='dataset folder (with train.csv)')
    parser.add_argument('--out', default='synthetic-check', help='folder for the PNGs (default ./synthetic-check)')
    parser.add_argument('--sample', type=int, default=40, help='DICOM files opened with pydicom (default 40)')
    parser.add_argument('--per-severity', type=int, default=1, help='PNGs per severity (default 1)')
    parser.add_argument('--strict-balance', action='store_true', help='fail when class fractions are off target')
    parser.add_argument('--seed', type=int, default=0, help='seed of the DICOM sample (default 0)')
    args = parser.parse_args()

    root = args.folder
    problems = []
    train = read_csv(os.path.join(root, 'train.csv'), TRAIN_HEADER, problems)
    coordinates = read_csv(os.path.join(root, 'train_label_coordinates.csv'), COORDINATE_HEADER, problems)
    descriptions = read_csv(os.path.join(root, 'train_series_descriptions.csv'), DESCRIPTION_HEADER, problems)
    images = os.path.join(root, 'train_images')

    # Every row references something that exists.
    series_of = {}
    for row in descriptions:
        folder = os.path.join(images, row['study_id'], row['series_id'])
        if row['series_description'] not in DESCRIPTIONS:
            problems.append(f'unknown series description {row["series_description"]!r}')
        if not os.path.isdir(folder) or not any(f.endswith('.dcm') for f in os.listdir(folder)):
            problems.append(f'series {row["study_id"]}/{row["series_id"]} has no DICOM folder')
        series_of[(row['study_id'], row['series_id'])] = row['series_description']
    labels = {}
    for row in train:
        if not os.path.isdir(os.path.join(images, row['study_id'])):
            problems.append(f'train.csv study {row["study_id"]} has no image folder')
        labels[row['study_id']] = row
        for column in TRAIN_HEADER[1:]:
            if row[column] not in SEVERITIES + ['']:
                problems.append(f'train.csv study {row["study_id"]} {column}: unknown value {row[column]!r}')
    by_instance = {}
    for row in coordinates:
        path = os.path.join(images, row['study_id'], row['series_id'], f'{row["instance_number"]}.dcm')
        if not os.path.isfile(path):
            problems.append(f'coordinate row {row} points at missing {path}')
            continue
        if series_of.get((row['study_id'], row['series_id'])) != 'Sagittal T2/STIR':
            problems.append(f'coordinate row {row} is not on a Sagittal T2/STIR series')
        if row['condition'] != 'Spinal Canal Stenosis' or row['level'] not in LEVELS:
            problems.append(f'coordinate row {row} has an unexpected condition or level')
            continue
        label = labels.get(row['study_id'], {}).get(f'spinal_canal_stenosis_{SLUGS[LEVELS.index(row["level"])]}')
        if not label:
            problems.append(f'coordinate row {row} has no label in train.csv')
            continue
        by_instance.setdefault(path, []).append((float(row['x']), float(row['y']), row['level'], label))
    on_disk = {(s, r) for s in os.listdir(images) for r in os.listdir(os.path.join(images, s))}
    unlisted = on_disk - set(series_of)
    if unlisted:
        problems.append(f'{len(unlisted)} series folders are not in train_series_descriptions.csv')

    # A sample of DICOMs read independently of the generator.
    files = sorted(
        (os.path.join(images, s, r, name), series_of.get((s, r), '?'))
        for s, r in on_disk
        for name in os.listdir(os.path.join(images, s, r))
    )
    sample = random.Random(args.seed).sample(files, min(args.sample, len(files)))
    sample += [(path, 'Sagittal T2/STIR') for path in sorted(by_instance)[:5]]
    for path, description in sample:
        ds = check_dicom(path, description, problems)
        if ds is not None and path in by_instance:
            for x, y, level, _ in by_instance[path]:
                if not (0 <= x < ds.Columns and 0 <= y < ds.Rows):
                    problems.append(f'{path}: {level} point ({x}, {y}) is outside the image')

    # Class balance of the spinal canal labels.
    counts = {level: {s: 0 for s in SEVERITIES + ['']} for level in LEVELS}
    for row in train:
        for level, slug in zip(LEVELS, SLUGS):
            counts[level][row[f'spinal_canal_stenosis_{slug}']] += 1
    total = sum(sum(c.values()) for c in counts.values())
    print(f'{len(train)} studies, {len(coordinates)} coordinate rows, {len(files)} DICOM files, '
          f'{len(sample)} opened with pydicom')
    print(f'{"level":8}' + ''.join(f'{s or "missing":>13}' for s in SEVERITIES + ['']))
    for level in LEVELS:
        print(f'{level:8}' + ''.join(f'{counts[level][s]:>13}' for s in SEVERITIES + ['']))
    overall = {s: sum(counts[level][s] for level in LEVELS) / max(total, 1) for s in SEVERITIES + ['']}
    print(f'{"all":8}' + ''.join(f'{100 * overall[s]:>12.1f}%' for s in SEVERITIES + ['']))
    labelled_without_row = sum(
        1
        for row in train
        for level, slug in zip(LEVELS, SLUGS)
        if row[f'spinal_canal_stenosis_{slug}']
        and not any(c['study_id'] == row['study_id'] and c['level'] == level for c in coordinates)
    )
    print(f'labelled levels without a coordinate row: {labelled_without_row}')
    if args.strict_balance:
        for severity, (low, high) in BALANCE.items():
            if not low <= overall[severity] <= high:
                problems.append(
                    f'{severity or "missing"} is {100 * overall[severity]:.1f}% of the spinal labels, '
                    f'expected {100 * low:.1f}..{100 * high:.1f}%'
                )

    # PNGs of annotated instances, one (or --per-severity) per severity, chosen deterministically: distinct
    # images, the Normal/Mild ones normal at every level so that they show what an open canal looks like.
    os.makedirs(args.out, exist_ok=True)
    written = []
    used = set()
    for severity in SEVERITIES:
        candidates = [
            path
            for path in sorted(by_instance)
            if path not in used
            and any(p[3] == severity for p in by_instance[path])
            and (severity != 'Normal/Mild' or all(p[3] == severity for p in by_instance[path]))
        ]
        for path in candidates[: args.per_severity]:
            used.add(path)
            level = next(p[2] for p in by_instance[path] if p[3] == severity)
            study = path.split(os.sep)[-3]
            name = f'{severity.split("/")[0].lower()}_{study}_{level.replace("/", "-")}.png'
            ds_rows = pydicom.dcmread(path, stop_before_pixels=True).Rows
            scale = max(1, 768 // ds_rows)
            draw_annotated(path, by_instance[path], f'study {study}: {severity} at {level}',
                           os.path.join(args.out, name), scale)
            written.append(os.path.join(args.out, name))
    for path in written:
        print(f'wrote {path}')

    if problems:
        print(f'{len(problems)} problem(s):', file=sys.stderr)
        for problem in problems[:50]:
            print(f'  {problem}', file=sys.stderr)
        return 1
    print('OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())

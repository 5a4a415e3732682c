#!/usr/bin/env python3
"""DICOM fixtures for the decoder tests, written by pydicom (an independent writer).

Writes one small file per variant the decoder must handle (transfer syntaxes, bit depths, signedness, BitsStored
below BitsAllocated, rescale, MONOCHROME1, multi-frame) and per error it must report, then reads each decodable file
back with pydicom and writes what the decoder should return as NAME.expected.bin (float32 little endian,
frame-major then row-major) plus OUT/manifest.json describing every file. Also writes a small sagittal series in
OUT/series (1.dcm, 2.dcm, 9.dcm, 10.dcm) whose slice positions disagree with both the file names and the
instance numbers, with the expected position order in the manifest.

    /usr/bin/python3 scripts/make_dicom_fixtures.py OUT
"""
import argparse
import json
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import apply_modality_lut
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

# Non-square with odd sizes, so that a row/column swap or an off-by-one stride shows up.
ROWS, COLUMNS = 17, 23
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
UID_PREFIX = "1.2.826.0.1.3680043.8.498."
STUDY_UID = generate_uid(UID_PREFIX, ["stenosis-fixture-study"])
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def uid(name):
    # Deterministic, so that reruns write identical files.
    return generate_uid(UID_PREFIX, [name])


def new_dataset(name, transfer_syntax, **image):
    """A minimal MR instance with the image pixel module filled from `image` (keyword -> value)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = uid(name + "-sop")
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = uid("stenosis-fixture-writer")
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = transfer_syntax != ExplicitVRBigEndian
    ds.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = uid(name + "-series")
    ds.SeriesDescription = "Sag T2 " + name
    ds.InstanceNumber = 7
    ds.PixelSpacing = [0.6875, 0.8125]
    ds.ImagePositionPatient = [-12.5, -101.25, 87.75]
    ds.ImageOrientationPatient = SAGITTAL
    ds.SliceThickness = 4
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for keyword, value in image.items():
        setattr(ds, keyword, value)
    return ds


def set_pixels(ds, words, big_endian=False):
    """Stores the raw stored words (numpy, any integer dtype) with the VR the bit depth calls for."""
    bits = ds.BitsAllocated
    dtype = {8: "u1", 16: "u2"}[bits]
    # Reinterpret rather than convert, so that junk above BitsStored and two's complement patterns survive.
    raw = words.astype(np.int64) & ((1 << bits) - 1)
    data = raw.astype((">" if big_endian else "<") + dtype).tobytes()
    ds.add_new(0x7FE00010, "OB" if bits == 8 else "OW", data)
    if words.ndim == 3:
        ds.NumberOfFrames = words.shape[0]


def expected_pixels(path):
    """What the decoder must return, computed from pydicom's reading of the file.

    pydicom 2.3's pixel_array neither masks the bits above BitsStored nor sign-extends BitsStored-bit values, so
    both are done here on its output before pydicom's own apply_modality_lut. MONOCHROME1 is then inverted per
    frame over the rescaled values: v' = (min + max) - v, in float64, before the cast to float32.
    """
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        # A raw dataset without a file meta group: the DICOM default transfer syntax.
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    arr = ds.pixel_array.astype(np.int64)
    stored = int(ds.BitsStored)
    arr &= (1 << stored) - 1
    if int(ds.PixelRepresentation) == 1:
        arr = np.where(arr >= 1 << (stored - 1), arr - (1 << stored), arr)
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    values = values.reshape(frames, int(ds.Rows), int(ds.Columns))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        low = values.min(axis=(1, 2), keepdims=True)
        high = values.max(axis=(1, 2), keepdims=True)
        values = (low + high) - values
    integer = bool(np.all(values == np.round(values)))
    return values.astype("<f4"), integer


def header_of(ds):
    def floats(keyword):
        value = getattr(ds, keyword, None)
        return None if value is None else [float(v) for v in value]

    return {
        "transferSyntax": str(ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "frames": int(getattr(ds, "NumberOfFrames", 1) or 1),
        "photometricInterpretation": str(ds.PhotometricInterpretation),
        "bitsAllocated": int(ds.BitsAllocated),
        "bitsStored": int(ds.BitsStored),
        "pixelRepresentation": int(ds.PixelRepresentation),
        "pixelSpacing": floats("PixelSpacing"),
        "instanceNumber": int(ds.InstanceNumber) if "InstanceNumber" in ds else None,
        "imagePositionPatient": floats("ImagePositionPatient"),
        "imageOrientationPatient": floats("ImageOrientationPatient"),
        "seriesDescription": str(ds.SeriesDescription) if "SeriesDescription" in ds else None,
        "studyInstanceUid": str(ds.StudyInstanceUID) if "StudyInstanceUID" in ds else None,
        "seriesInstanceUid": str(ds.SeriesInstanceUID) if "SeriesInstanceUID" in ds else None,
    }


def image_fixtures(rng):
    """(name, dataset, write options) for every file the decoder must decode."""
    shape = (ROWS, COLUMNS)
    out = []

    # 12 bits stored in 16 with junk in the top 4 bits (old scanners kept overlays there): must be masked away.
    ds = new_dataset("explicit_u16_bs12", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=12, HighBit=11,
                     PixelRepresentation=0)
    values = rng.integers(0, 4096, shape)
    values[0, 0], values[0, 1] = 0, 4095
    set_pixels(ds, values | (rng.integers(0, 16, shape) << 12))
    out.append(("explicit_u16_bs12", ds, {}))

    ds = new_dataset("implicit_s16", ImplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=1)
    values = rng.integers(-2000, 2000, shape)
    values[0, 0], values[0, 1] = -32768, 32767
    set_pixels(ds, values)
    out.append(("implicit_s16", ds, {}))

    ds = new_dataset("explicit_u8", ExplicitVRLittleEndian, BitsAllocated=8, BitsStored=8, HighBit=7,
                     PixelRepresentation=0)
    # 17 * 23 bytes is odd, so the element is padded to an even length: longer than needed must be accepted.
    values = rng.integers(0, 256, shape)
    values[0, 0], values[0, 1] = 0, 255
    set_pixels(ds, values)
    out.append(("explicit_u8", ds, {}))

    ds = new_dataset("explicit_s8", ExplicitVRLittleEndian, BitsAllocated=8, BitsStored=8, HighBit=7,
                     PixelRepresentation=1)
    set_pixels(ds, rng.integers(-128, 128, shape))
    out.append(("explicit_s8", ds, {}))

    ds = new_dataset("rescale_u16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0, RescaleSlope="2.5", RescaleIntercept="-1024")
    set_pixels(ds, rng.integers(0, 60000, shape))
    out.append(("rescale_u16", ds, {}))

    ds = new_dataset("monochrome1_u16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0, PhotometricInterpretation="MONOCHROME1")
    set_pixels(ds, rng.integers(100, 3000, shape))
    out.append(("monochrome1_u16", ds, {}))

    # Inversion over rescaled values, with a slope whose products are not exact in float32.
    ds = new_dataset("monochrome1_rescale_s16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16,
                     HighBit=15, PixelRepresentation=1, PhotometricInterpretation="MONOCHROME1",
                     RescaleSlope="0.3", RescaleIntercept="7.7")
    set_pixels(ds, rng.integers(-500, 1500, shape))
    out.append(("monochrome1_rescale_s16", ds, {}))

    # Frames with different ranges, so that a per-file instead of per-frame inversion would show.
    ds = new_dataset("multiframe_u16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0, RescaleSlope="1", RescaleIntercept="-10")
    set_pixels(ds, np.stack([rng.integers(0, 100 * (f + 1) ** 3, shape) for f in range(3)]))
    out.append(("multiframe_u16", ds, {}))

    ds = new_dataset("multiframe_monochrome1_u8", ImplicitVRLittleEndian, BitsAllocated=8, BitsStored=8,
                     HighBit=7, PixelRepresentation=0, PhotometricInterpretation="MONOCHROME1")
    set_pixels(ds, np.stack([rng.integers(10 * f, 100 + 50 * f, shape) for f in range(3)]))
    out.append(("multiframe_monochrome1_u8", ds, {}))

    # Signed 12 bits in 16: some words sign-extended by the writer, some with the top 4 bits clear, some with junk
    # there, so that only masking to 12 bits and then sign-extending from bit 11 gives the right values.
    ds = new_dataset("signed_bs12", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=12, HighBit=11,
                     PixelRepresentation=1)
    values = rng.integers(-2048, 2048, shape)
    values[0, 0], values[0, 1], values[0, 2] = -2048, 2047, -1
    words = values & 0xFFF
    top = rng.integers(0, 3, shape)
    words = np.where(top == 0, words, np.where(top == 1, values & 0xFFFF, words | (rng.integers(0, 16, shape) << 12)))
    set_pixels(ds, words)
    out.append(("signed_bs12", ds, {}))

    ds = new_dataset("big_endian_s16", ExplicitVRBigEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=1, RescaleSlope="1", RescaleIntercept="0")
    set_pixels(ds, rng.integers(-3000, 3000, shape), big_endian=True)
    out.append(("big_endian_s16", ds, {}))

    ds = new_dataset("deflated_u16", DeflatedExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0)
    set_pixels(ds, rng.integers(0, 1000, shape))
    out.append(("deflated_u16", ds, {}))

    # No preamble, no 'DICM', no file meta group: a bare implicit VR little endian dataset.
    ds = new_dataset("raw_implicit_u16", ImplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0)
    set_pixels(ds, rng.integers(0, 5000, shape))
    out.append(("raw_implicit_u16", ds, {"raw": True}))

    # Large enough (128 KiB of pixels) that the header reader stops before the end of the file.
    ds = new_dataset("large_u16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0, Rows=256, Columns=256)
    set_pixels(ds, rng.integers(0, 4096, (256, 256)))
    out.append(("large_u16", ds, {}))

    # A header longer than the header reader's first read, so that it has to read on.
    ds = new_dataset("long_header_s16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=1)
    ds.add_new(0x00090010, "LO", "STENOSIS FIXTURE")
    ds.add_new(0x00091001, "OB", bytes(rng.integers(0, 256, 100_000, dtype=np.uint8)))
    set_pixels(ds, rng.integers(-100, 100, shape))
    out.append(("long_header_s16", ds, {}))

    # Optional attributes absent: the header reports null for them.
    ds = new_dataset("no_geometry_u16", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0)
    for keyword in ["PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber",
                    "SeriesDescription"]:
        delattr(ds, keyword)
    set_pixels(ds, rng.integers(0, 100, shape))
    out.append(("no_geometry_u16", ds, {}))
    return out


def error_fixtures(rng):
    """(name, dataset, write options, expected error code, words the message must contain)."""
    shape = (ROWS, COLUMNS)
    out = []
    for name, syntax, label in [("jpeg_baseline", JPEGBaseline8Bit, "JPEG Baseline"),
                                ("rle", RLELossless, "RLE Lossless")]:
        ds = new_dataset(name, syntax, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
        # Not a decodable JPEG or RLE stream: the decoder must reject the transfer syntax before looking at it.
        ds.PixelData = encapsulate([bytes(rng.integers(0, 256, 64, dtype=np.uint8))])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        out.append((name, ds, {}, "ERR_DICOM_UNSUPPORTED", [name + ".dcm", str(syntax), label]))

    ds = new_dataset("no_pixels", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0)
    out.append(("no_pixels", ds, {}, "ERR_DICOM_NO_PIXELS", ["no_pixels.dcm", "7FE0,0010"]))

    ds = new_dataset("short_pixels", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=0)
    ds.add_new(0x7FE00010, "OW", bytes(2 * ROWS * COLUMNS - 2))
    out.append(("short_pixels", ds, {}, "ERR_DICOM_INVALID", ["short_pixels.dcm", str(2 * ROWS * COLUMNS)]))

    ds = new_dataset("rgb", ExplicitVRLittleEndian, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0,
                     SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0)
    ds.add_new(0x7FE00010, "OB", bytes(3 * ROWS * COLUMNS + 1))
    out.append(("rgb", ds, {}, "ERR_DICOM_UNSUPPORTED", ["rgb.dcm", "SamplesPerPixel", "colour"]))

    ds = new_dataset("high_bit_15", ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=12, HighBit=15,
                     PixelRepresentation=0)
    set_pixels(ds, rng.integers(0, 4096, shape))
    out.append(("high_bit_15", ds, {}, "ERR_DICOM_UNSUPPORTED", ["high_bit_15.dcm", "HighBit"]))
    return out


def write(ds, path, options):
    if options.get("raw"):
        bare = Dataset()
        bare.update(ds)
        bare.is_little_endian = True
        bare.is_implicit_VR = True
        pydicom.dcmwrite(path, bare, write_like_original=True)
        with open(path, "rb") as f:
            assert f.read(132)[128:] != b"DICM", "raw fixture must not have the Part 10 header"
    else:
        pydicom.dcmwrite(path, ds, write_like_original=False)
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        # Guard against a pydicom that would silently write the deflated fixture uncompressed.
        with open(path, "rb") as f:
            assert ds.PixelData not in f.read(), "deflated fixture was written uncompressed"


def series(out_dir):
    """Four sagittal slices whose position order is neither the file-name nor the instance-number order."""
    folder = os.path.join(out_dir, "series")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    # file name -> (patient x in mm, InstanceNumber with gaps)
    slices = {"1.dcm": (10.0, 3), "2.dcm": (-5.0, 40), "9.dcm": (20.0, 7), "10.dcm": (0.0, 12)}
    row, col = np.array(SAGITTAL[:3]), np.array(SAGITTAL[3:])
    normal = np.cross(row, col)
    keyed = []
    for name, (x, instance) in slices.items():
        ds = new_dataset("series-" + name, ExplicitVRLittleEndian, BitsAllocated=16, BitsStored=16, HighBit=15,
                         PixelRepresentation=0)
        ds.SeriesInstanceUID = uid("series")
        ds.SeriesDescription = "Sag T2"
        ds.InstanceNumber = instance
        position = [x, -101.25, 87.75]
        ds.ImagePositionPatient = position
        set_pixels(ds, rng.integers(0, 100, (ROWS, COLUMNS)))
        pydicom.dcmwrite(os.path.join(folder, name), ds, write_like_original=False)
        keyed.append((float(np.dot(position, normal)), name))
    return {"folder": "series", "order": [name for _, name in sorted(keyed)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write into (created if missing)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240611)

    images = []
    for name, ds, options in image_fixtures(rng):
        path = os.path.join(args.out, name + ".dcm")
        write(ds, path, options)
        pixels, integer = expected_pixels(path)
        pixels.tofile(os.path.join(args.out, name + ".expected.bin"))
        entry = {"name": name, "file": name + ".dcm", "integer": integer, "expectedFile": name + ".expected.bin"}
        entry.update(header_of(pydicom.dcmread(path, force=True)))
        if options.get("raw"):
            entry["transferSyntax"] = str(ImplicitVRLittleEndian)
        images.append(entry)

    errors = []
    for name, ds, options, code, words in error_fixtures(rng):
        write(ds, os.path.join(args.out, name + ".dcm"), options)
        errors.append({"name": name, "file": name + ".dcm", "code": code, "messageContains": words})

    manifest = {"rows": ROWS, "columns": COLUMNS, "images": images, "errors": errors, "series": series(args.out)}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()

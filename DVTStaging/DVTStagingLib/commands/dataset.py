"""`dvt-staging dataset ACTION`: validate, stats, split, export, nnunet."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import UserError
from . import options

NAME = "dataset"
HELP = "dataset tools"


def _validate(args) -> int:
    from ..io.dataset import validate_dataset

    problems = validate_dataset(args.root, deep=not args.quick)
    if problems:
        for p in problems[:50]:
            print(f"{args.root}: {p}", file=sys.stderr)
        if len(problems) > 50:
            print(f"... and {len(problems) - 50} more", file=sys.stderr)
        return 2
    print(f"{args.root}: valid dataset")
    return 0


def _stats(args) -> int:
    import json

    from ..research.dataset_tools import dataset_stats, format_stats

    stats = dataset_stats(args.root, with_segments=not args.no_segments)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _split(args) -> int:
    from ..research.dataset_tools import format_split, split_dataset

    dataset = split_dataset(args.root, by=args.by, seed=args.seed, fractions=args.fractions, overwrite=args.overwrite)
    print(format_split(dataset))
    print(f"{args.root}: wrote dataset.json")
    return 0


def _export(args) -> int:
    from ..research.export import export_cases, read_study_folder, read_worklist_studies

    if bool(args.studies) == bool(args.worklist):
        raise UserError("give study folders or --worklist FOLDER, one of them")
    if args.worklist:
        studies = read_worklist_studies(args.worklist, all_studies=args.all)
    else:
        studies = [read_study_folder(folder, args.image_name) for folder in args.studies]
    dataset = export_cases(studies, args.out, keep_identifiers=args.keep_identifiers, overwrite=args.overwrite)
    print(f"{args.out}: exported {len(studies)} studies ({len(dataset.cases)} cases in dataset.json)")
    return 0


def _nnunet(args) -> int:
    from ..research.export import export_nnunet

    doc = export_nnunet(args.root, args.out, overwrite=args.overwrite)
    print(f"{args.out}: nnU-Net raw dataset with {doc['numTraining']} cases")
    return 0


def _root(v):
    v.add_argument("root", type=Path, help="dataset folder (dataset.json)")


def add_arguments(p, parser_class):
    actions = p.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True

    v = actions.add_parser("validate", help="check a dataset folder against the format")
    _root(v)
    v.add_argument("--quick", action="store_true", help="check dataset.json and file presence only")
    v.set_defaults(handler=_validate)

    v = actions.add_parser("stats", help="cases per split and stage, thrombus sizes (ROI boxes, thrombus segments)")
    _root(v)
    options.add_json(v)
    v.add_argument("--no-segments", action="store_true", help="skip reading segmentations (box sizes only)")
    v.set_defaults(handler=_stats)

    v = actions.add_parser("split", help="assign train/val/test, each patient in one split, stratified by stage")
    _root(v)
    v.add_argument("--by", choices=["patient", "case"], default="patient",
                   help="group kept in one split: the case field 'patient' (else the case id), or each case")
    options.add_seed(v)
    v.add_argument("--fractions", type=float, nargs=3, default=[0.6, 0.2, 0.2], metavar=("TRAIN", "VAL", "TEST"))
    v.add_argument("--overwrite", action="store_true", help="reassign cases that already have a split")
    v.set_defaults(handler=_split)

    v = actions.add_parser(
        "export", help="export annotated study folders as a (de-identified) dataset",
        description="Each STUDY_DIR holds the image (image.nrrd, image.nii.gz or a DICOM series folder 'dicom'; "
                    "see --image-name), the ROIs (*.mrk.json), and optionally annotation.json (true stage per ROI, "
                    "reviewed, notes: what the Slicer worklist writes), result.json (the model's prediction) and "
                    "thrombus.seg.nrrd (a segment named 'thrombus'). Case ids are stable pseudonyms; no patient "
                    "name, ID or birth date is written unless --keep-identifiers. Cases are written atomically; "
                    "manifest.json records the sha256 of every file. With --worklist FOLDER: the studies of a "
                    "Slicer worklist folder, with what the worklist saved for them (ROIs, labels, thrombus "
                    "segmentation, last result).")
    v.add_argument("studies", type=Path, nargs="*", metavar="STUDY_DIR")
    v.add_argument("--worklist", type=Path, default=None, metavar="FOLDER",
                   help="export the labeled studies of a Slicer worklist folder instead of study folders")
    v.add_argument("--all", action="store_true", help="with --worklist: every study with ROIs, labeled or not")
    v.add_argument("--out", type=Path, required=True, help="dataset folder (created, or extended)")
    v.add_argument("--image-name", default=None,
                   help="image file or DICOM folder name inside each STUDY_DIR "
                        "(default: first of image.nrrd, image.nii.gz, dicom)")
    v.add_argument("--keep-identifiers", action="store_true",
                   help="keep the patient ID and DICOM tags in dataset.json (internal use only)")
    v.add_argument("--overwrite", action="store_true", help="replace cases already in --out")
    v.set_defaults(handler=_export)

    v = actions.add_parser("nnunet", help="nnU-Net v2 raw-dataset view (NIfTI) of the cases with a thrombus "
                                          "segmentation",
                           description="Writes imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz (background 0, "
                                       "thrombus 1) and dataset.json (channel_names, labels, numTraining, "
                                       "file_ending).")
    _root(v)
    v.add_argument("--out", type=Path, required=True, help="nnU-Net raw dataset folder, e.g. Dataset501_DVT")
    v.add_argument("--overwrite", action="store_true", help="replace an nnU-Net dataset already in --out")
    v.set_defaults(handler=_nnunet)

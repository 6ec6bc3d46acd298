"""`dvt-staging` command line (docs/cli.md).

Exit status: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 130 cancelled, 1 internal error (here or on a staging server),
3 staging server unreachable or connection lost.  Heavy imports (torch)
happen inside the commands that need them, so `phantom`, `dataset` and the
`--server` client start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .core.errors import Cancelled, ServerError, ServiceUnreachable, UserError
from .models.devices import DEVICES

PROG = "dvt-staging"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage on several lines; we want one line
        raise UserError(f"{message} (see '{self.prog} --help')")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def _add_server_options(p):
    p.add_argument("--server", metavar="URL", default=None,
                   help="run the model on a staging server (dvt-staging serve), e.g. http://127.0.0.1:8787")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the server's token (with --server)")
    p.add_argument("--wait-for-server", type=float, default=0.0, metavar="SECONDS",
                   help="with --server: keep trying to reach a server that is still starting")


def _remote(args, kind: str, outputs) -> int | None:
    """Run the command on the server of --server (None: there is none, run here)."""
    if args.server is None:
        if args.token_file is not None:
            raise UserError("--token-file goes with --server")
        return None
    from .service.client import run_remote

    return run_remote(kind, args, outputs)


def _add_common_output(p, default_out):
    p.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default: {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace results already in the output folder")


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
def cmd_phantom(args) -> int:
    from .core.progress import status
    from .phantom.preview import measure_case, ratio_statistics, write_preview
    from .phantom.writer import write_phantom_dataset

    dataset = write_phantom_dataset(args.out, args.cases, args.seed, workers=args.workers,
                                    overwrite=args.overwrite, normal_fraction=args.normal_fraction)
    status(f"phantom: wrote {len(dataset.cases)} studies to {args.out}")
    if args.preview:
        measurements = [m for case in dataset.cases for m in measure_case(dataset, case)]
        path = write_preview(dataset, args.out / "preview.png", measurements)
        for stage, s in ratio_statistics(measurements).items():
            status(f"phantom: {stage:9s} thrombus/muscle ratio {s['mean']:.2f} ± {s['sd']:.2f} (n={s['n']})")
        status(f"phantom: preview {path}")
    return 0


def cmd_dataset_validate(args) -> int:
    from .io.dataset import validate_dataset

    problems = validate_dataset(args.root, deep=not args.quick)
    if problems:
        for p in problems[:50]:
            print(f"{args.root}: {p}", file=sys.stderr)
        if len(problems) > 50:
            print(f"... and {len(problems) - 50} more", file=sys.stderr)
        return 2
    print(f"{args.root}: valid dataset")
    return 0


def cmd_dataset_stats(args) -> int:
    import json

    from .research.dataset_tools import dataset_stats, format_stats

    stats = dataset_stats(args.root, with_segments=not args.no_segments)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def cmd_dataset_split(args) -> int:
    from .research.dataset_tools import format_split, split_dataset

    dataset = split_dataset(args.root, by=args.by, seed=args.seed, fractions=args.fractions, overwrite=args.overwrite)
    print(format_split(dataset))
    print(f"{args.root}: wrote dataset.json")
    return 0


def cmd_dataset_export(args) -> int:
    from .research.export import export_cases, read_study_folder

    studies = [read_study_folder(folder, args.image_name) for folder in args.studies]
    dataset = export_cases(studies, args.out, keep_identifiers=args.keep_identifiers, overwrite=args.overwrite)
    print(f"{args.out}: exported {len(studies)} studies ({len(dataset.cases)} cases in dataset.json)")
    return 0


def cmd_dataset_nnunet(args) -> int:
    from .research.export import export_nnunet

    doc = export_nnunet(args.root, args.out, overwrite=args.overwrite)
    print(f"{args.out}: nnU-Net raw dataset with {doc['numTraining']} cases")
    return 0


def cmd_stage(args) -> int:
    from .staging.outputs import STAGE_OUTPUTS

    remote = _remote(args, "stage", STAGE_OUTPUTS)
    if remote is not None:
        return remote
    from .staging.pipeline import stage_study

    stage_study(args.input, args.out, roi_path=args.roi, auto_roi=args.auto_roi, model=args.model,
                device=args.device, overwrite=args.overwrite)
    return 0


def cmd_train(args) -> int:
    from .models.config import load_config
    from .training.train import run_training

    run_training(args.data, load_config(args.config), args.out, seed=args.seed, device=args.device,
                 resume=args.resume, model_id=args.model_id, publish=not args.no_publish, epochs=args.epochs,
                 time_limit_s=None if args.time_limit_min is None else args.time_limit_min * 60, bf16=args.bf16)
    return 0


def cmd_evaluate(args) -> int:
    from .training.evaluate import compare, evaluate_model

    if args.compare:
        compare(args.data, args.out, base=args.config, epochs=args.epochs, seed=args.seed, device=args.device,
                variants=args.variants, model=args.model, overwrite=args.overwrite)
    else:
        evaluate_model(args.data, args.model, args.out, split=args.split, device=args.device, overwrite=args.overwrite)
    return 0


def cmd_evaluate_ood(args) -> int:
    from .core.files import prepare_output, write_json_atomic
    from .core.progress import status
    from .detection.detector import load_detector
    from .io.dataset import load_dataset
    from .staging.inference import Stager
    from .training.ood import evaluate_ood, ood_inputs

    out = prepare_output(args.out, args.overwrite, names=("ood.json",))
    phantom = load_dataset(args.data) if args.data else None
    stager = Stager(args.model, args.device)
    report = evaluate_ood(stager, ood_inputs(args.seed, args.per_kind, args.brain, phantom, args.phantom_cases),
                          load_detector(None, args.device))
    report.update(model={"id": stager.entry.id, "sha256": stager.entry.card["sha256"]}, seed=args.seed)
    write_json_atomic(out / "ood.json", report)
    for kind, k in report["per_kind"].items():
        status(f"evaluate-ood: {kind}: {k['abstained']}/{k['n']} indeterminate")
    status(f"evaluate-ood: {report['abstained']}/{report['n']} indeterminate ({report['indeterminate_rate']:.0%}); "
           f"wrote {out / 'ood.json'}")
    return 0


def cmd_calibrate(args) -> int:
    from .training.calibration import calibrate_model

    model_id = args.model_id
    if not args.overwrite and model_id and (args.out / f"{model_id}.json").exists():
        raise UserError(f"{args.out / (model_id + '.json')} exists; pass --overwrite to replace it")
    calibrate_model(args.data, args.model, args.out, model_id=model_id, device=args.device, publish=args.publish)
    return 0


def cmd_benchmark(args) -> int:
    from .staging.benchmark import run_benchmark

    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    run_benchmark(device=args.device, repeats=args.repeats, as_json=args.json)
    return 0


def cmd_detect(args) -> int:
    from .detection.commands import DETECT_OUTPUTS, detect_study

    remote = _remote(args, "detect", DETECT_OUTPUTS)
    if remote is not None:
        return remote

    detect_study(args.input, args.out, model=args.model, device=args.device, overwrite=args.overwrite,
                 segmentation=args.segmentation)
    return 0


def cmd_serve(args) -> int:
    from .service.server import serve

    return serve(args.host, args.port, token_file=args.token_file, device=args.device, model=args.model,
                 port_file=args.port_file, parent_pid=args.parent_pid, max_upload_mb=args.max_upload_mb,
                 jobs=args.jobs, max_jobs=args.max_jobs, keep_s=args.keep_s, work_dir=args.work_dir,
                 log_level=args.log_level)


def cmd_benchmark_service(args) -> int:
    from .service.benchmark import run_service_benchmark

    if args.repeats < 1 or args.clients < 1 or args.studies < 1:
        raise UserError("--repeats, --clients and --studies must be at least 1")
    run_service_benchmark(device=args.device, repeats=args.repeats, clients=args.clients, studies=args.studies,
                          as_json=args.json, server_jobs=args.server_jobs)
    return 0


def cmd_train_detector(args) -> int:
    from .detection.commands import train_detector_command

    train_detector_command(args.data, args.out, epochs=args.epochs, seed=args.seed, device=args.device,
                           steps_per_epoch=args.steps_per_epoch, batch=args.batch, model_id=args.model_id)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, seed=args.seed, model=args.model, device=args.device, overwrite=args.overwrite,
             true_roi=args.true_roi)
    return 0


# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Stage deep vein thrombosis on black-blood MR thrombus imaging. "
                                            "Research software, not for clinical use.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("demo", help="phantom study -> ROI -> staging -> overlay and report")
    _add_common_output(p, "dvt-demo")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--model", default=None, help="catalogue id or model card JSON (default: bundled)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--true-roi", action="store_true", help="stage the phantom's true ROI instead of detecting it")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("stage", help="stage every thrombus ROI of a study")
    p.add_argument("input", type=Path, help="volume file (NRRD, NIfTI, MHA, ...) or DICOM series folder")
    p.add_argument("--roi", type=Path, help="Slicer markups JSON with the thrombus ROI(s)")
    p.add_argument("--auto-roi", action="store_true", help="detect thrombus ROIs automatically")
    p.add_argument("--model", default=None, help="catalogue id or model card JSON (default: bundled)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    _add_common_output(p, "dvt-stage")
    _add_server_options(p)
    p.set_defaults(handler=cmd_stage)

    p = sub.add_parser("serve", help="HTTP staging service: models stay loaded, clients send studies (docs/service.md)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                                                       "address needs --token-file)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any free port, see --port-file)")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the token clients must send")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--model", default=None, help="default staging model: catalogue id or model card JSON")
    p.add_argument("--port-file", type=Path, default=None, help="write the port here once the server is ready")
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process has gone")
    p.add_argument("--max-upload-mb", type=int, default=1024, help="largest upload accepted (default 1024 MB)")
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs run at once (default 1 on a CPU, 4 on a GPU, where their slices are batched together)")
    p.add_argument("--max-jobs", type=int, default=16, help="jobs queued or running before new ones get 503")
    p.add_argument("--keep-s", type=float, default=600.0, help="seconds a finished job's outputs wait to be fetched")
    p.add_argument("--work-dir", type=Path, default=None, help="folder for jobs (default: a new temporary folder)")
    p.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("train", help="train a staging model (works under torchrun for DDP)")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (dataset.json)")
    p.add_argument("--config", default="vdpf-small", help="vdpf-small, vdpf-b16, vdpf-tiny or a JSON config file")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, weights, model card")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the config's epoch count")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--model-id", default=None, help="catalogue id of the trained model (default: config + time)")
    p.add_argument("--no-publish", action="store_true", help="don't add the model to the user catalogue")
    p.add_argument("--time-limit-min", type=_positive_float, default=None,
                   help="stop with the best weights so far when the next epoch would end past this many minutes")
    p.add_argument("--bf16", action="store_true", help="mixed precision (bf16 autocast) on a GPU; ignored on a CPU")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model on a dataset split, or the comparison table")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model", default=None, help="catalogue id or model card JSON (default: bundled)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split to score; all: every case (a held-out dataset)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--compare", action="store_true",
                   help="train and score the VDPF ablations and the crop baselines on the same split")
    p.add_argument("--config", default="vdpf-small", help="base config of the comparison")
    p.add_argument("--epochs", type=int, default=None, help="comparison: epochs per variant")
    p.add_argument("--variants", nargs="+", default=None, help="comparison: table rows to run (default: all)")
    p.add_argument("--seed", type=int, default=0)
    _add_common_output(p, "dvt-evaluate")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("evaluate-ood", help="stage inputs the model must refuse (noise, geometry, brains, ROIs "
                                            "off the thrombus) and count how many come out indeterminate")
    p.add_argument("--model", default=None, help="catalogue id or model card JSON (default: bundled)")
    p.add_argument("--data", type=Path, default=None, help="a phantom dataset: ROIs moved onto a normal vein / muscle")
    p.add_argument("--phantom-cases", type=int, default=10, help="phantom studies used from --data (default 10)")
    p.add_argument("--brain", type=Path, nargs="*", default=[], help="brain MR volumes (e.g. mricron-data templates)")
    p.add_argument("--per-kind", type=int, default=5, help="synthetic volumes per kind (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    _add_common_output(p, "dvt-ood")
    p.set_defaults(handler=cmd_evaluate_ood)

    p = sub.add_parser("calibrate", help="fit a model's temperature and abstention thresholds on a dataset "
                                         "(train: OOD statistics; val: temperature and thresholds)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model", default=None, help="catalogue id or model card JSON (default: bundled)")
    p.add_argument("--model-id", default=None, help="id of the calibrated model (default: <model>-calibrated)")
    p.add_argument("--publish", action="store_true", help="also add it to the user catalogue")
    p.add_argument("--device", choices=DEVICES, default="auto")
    _add_common_output(p, "dvt-calibrate")
    p.set_defaults(handler=cmd_calibrate)

    p = sub.add_parser("benchmark", help="slice pairs/s and FLOP/s against the measured matmul peak")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_benchmark)

    p = sub.add_parser("benchmark-service", help="cold local stage against a warm staging server, and a load test")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--repeats", type=int, default=5, help="runs of each latency measurement (median)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients of the load test")
    p.add_argument("--studies", type=int, default=10, help="studies each client stages")
    p.add_argument("--server-jobs", type=int, default=None,
                   help="the server's --jobs (default: its own; more than 1 batches slices across requests)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_benchmark_service)

    p = sub.add_parser("detect", help="find thrombus ROIs in a study (2.5D detector)")
    p.add_argument("input", type=Path, help="volume file (NRRD, NIfTI, MHA, ...) or DICOM series folder")
    p.add_argument("--model", default=None, help="detector catalogue id or model card JSON (default: bundled)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--segmentation", action="store_true", help="also write thrombus.seg.nrrd (detected thrombus)")
    _add_common_output(p, "dvt-detect")
    _add_server_options(p)
    p.set_defaults(handler=cmd_detect)

    p = sub.add_parser("train-detector", help="train the thrombus detector on a dataset's train split")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (dataset.json) with train/val/test splits")
    p.add_argument("--out", type=Path, required=True, help="folder for the weights, model card and FROC picture")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--steps-per-epoch", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--model-id", default="detector-phantom", help="catalogue id of the trained detector")
    p.set_defaults(handler=cmd_train_detector)

    p = sub.add_parser("phantom", help="write a labeled synthetic BTI dataset")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--normal-fraction", type=float, default=0.0, help="share of studies without thrombus")
    p.add_argument("--preview", action="store_true", help="also write preview.png, one study per stage")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.set_defaults(handler=cmd_phantom)

    p = sub.add_parser("dataset", help="dataset tools")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=_Parser)
    dsub.required = True
    v = dsub.add_parser("validate", help="check a dataset folder against the format")
    v.add_argument("root", type=Path)
    v.add_argument("--quick", action="store_true", help="check dataset.json and file presence only")
    v.set_defaults(handler=cmd_dataset_validate)
    v = dsub.add_parser("stats", help="cases per split and stage, thrombus sizes (ROI boxes, thrombus segments)")
    v.add_argument("root", type=Path)
    v.add_argument("--json", action="store_true", help="print JSON (with one record per ROI) instead of tables")
    v.add_argument("--no-segments", action="store_true", help="skip reading segmentations (box sizes only)")
    v.set_defaults(handler=cmd_dataset_stats)
    v = dsub.add_parser("split", help="assign train/val/test, each patient in one split, stratified by stage")
    v.add_argument("root", type=Path)
    v.add_argument("--by", choices=["patient", "case"], default="patient",
                   help="group kept in one split: the case field 'patient' (else the case id), or each case")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--fractions", type=float, nargs=3, default=[0.6, 0.2, 0.2], metavar=("TRAIN", "VAL", "TEST"))
    v.add_argument("--overwrite", action="store_true", help="reassign cases that already have a split")
    v.set_defaults(handler=cmd_dataset_split)
    v = dsub.add_parser(
        "export", help="export annotated study folders as a (de-identified) dataset",
        description="Each STUDY_DIR holds the image (image.nrrd, image.nii.gz or a DICOM series folder 'dicom'; "
                    "see --image-name), the ROIs (*.mrk.json), and optionally annotation.json (true stage per ROI, "
                    "reviewed, notes: what the Slicer worklist writes), result.json (the model's prediction) and "
                    "thrombus.seg.nrrd (a segment named 'thrombus'). Case ids are stable pseudonyms; no patient "
                    "name, ID or birth date is written unless --keep-identifiers. Cases are written atomically; "
                    "manifest.json records the sha256 of every file.")
    v.add_argument("studies", type=Path, nargs="+", metavar="STUDY_DIR")
    v.add_argument("--out", type=Path, required=True, help="dataset folder (created, or extended)")
    v.add_argument("--image-name", default=None,
                   help="image file or DICOM folder name inside each STUDY_DIR "
                        "(default: first of image.nrrd, image.nii.gz, dicom)")
    v.add_argument("--keep-identifiers", action="store_true",
                   help="keep the patient ID and DICOM tags in dataset.json (internal use only)")
    v.add_argument("--overwrite", action="store_true", help="replace cases already in --out")
    v.set_defaults(handler=cmd_dataset_export)
    v = dsub.add_parser("nnunet", help="nnU-Net v2 raw-dataset view (NIfTI) of the cases with a thrombus segmentation",
                        description="Writes imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz (background 0, "
                                    "thrombus 1) and dataset.json (channel_names, labels, numTraining, file_ending).")
    v.add_argument("root", type=Path, help="dataset folder (dataset.json)")
    v.add_argument("--out", type=Path, required=True, help="nnU-Net raw dataset folder, e.g. Dataset501_DVT")
    v.add_argument("--overwrite", action="store_true", help="replace an nnU-Net dataset already in --out")
    v.set_defaults(handler=cmd_dataset_nnunet)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(f"{PROG}: cancelled", file=sys.stderr)
        return 130
    except ServiceUnreachable as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 3
    except ServerError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line; the traceback on request
        if os.environ.get("DVT_STAGING_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set DVT_STAGING_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":   # `python -m DVTStagingLib.cli` as well as `python -m DVTStagingLib`
    sys.exit(main())

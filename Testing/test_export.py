"""Dataset export (issue 6): de-identification, atomic cases, manifest, nnU-Net view, round trip."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from DVTStagingLib.cli import main
from DVTStagingLib.io.dataset import load_dataset, validate_dataset
from DVTStagingLib.io.roi import read_rois, write_rois
from DVTStagingLib.io.segmentation import THROMBUS, THROMBUS_SEGMENT, read_segmentation, write_segmentation
from DVTStagingLib.io.volume import read_volume
from DVTStagingLib.research import export as export_mod
from DVTStagingLib.research.annotation import CaseAnnotation, write_annotation
from DVTStagingLib.research.export import ExportStudy, export_cases, verify_manifest

NAME, PID, BIRTH = "DOE^JANE", "PID-12345", "19700101"
IDENTIFIERS = [NAME.encode(), b"DOE", PID.encode(), BIRTH.encode()]


def _case_rois(dataset, case):
    return [r for rel in case.rois for r in read_rois(dataset.path(rel))]


def _thrombus_mask(dataset, case):
    return read_segmentation(dataset.path(case.segmentation)).find_mask("thrombus")


@pytest.fixture(scope="module")
def study_dirs(phantom_dataset, tmp_path_factory):
    """Two study folders as the worklist leaves them: one DICOM series with identifiers, one NRRD."""
    pytest.importorskip("pydicom")
    from test_dicom_outputs import write_mr_series

    tmp = tmp_path_factory.mktemp("studies")
    ds = phantom_dataset
    dirs = []
    for n, case in enumerate(ds.cases[:2]):
        folder = tmp / f"study{n}"
        volume = read_volume(ds.path(case.image))
        rois = _case_rois(ds, case)
        if n == 0:
            write_mr_series(volume, folder / "dicom", patient_name=NAME, patient_id=PID)
            mask = _thrombus_mask(ds, case)
            write_segmentation(folder / "thrombus.seg.nrrd", mask.astype(np.uint8) * THROMBUS, volume,
                               segments=THROMBUS_SEGMENT)
            result = {"schema": "dvt-staging/result@1", "stage": "acute", "probabilities": {"acute": 0.7},
                      "input": {"path": str(folder / "dicom" / f"{NAME}.dcm")},
                      "model": {"id": "m", "version": "1", "sha256": "0" * 64},
                      "rois": [{"name": r.name, "stage": "acute", "probabilities": {"acute": 0.7}} for r in rois]}
            (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")
        else:
            folder.mkdir()
            shutil.copyfile(ds.path(case.image), folder / "image.nrrd")
        write_rois(folder / "rois.mrk.json", rois)
        write_annotation(folder / "annotation.json", CaseAnnotation(
            true_stages={r.name: case.stage_of(r.name) for r in rois}, reviewed=True, notes="ok", annotator="dr x"))
        dirs.append(folder)
    return dirs


def _export(capsys, study_dirs, out, *extra):
    code = main(["dataset", "export", *map(str, study_dirs), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _all_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def _nrrd_header(path) -> bytes:
    data = path.read_bytes()
    return data[: data.index(b"\n\n")]


def test_export_is_deidentified_and_valid(study_dirs, tmp_path, capsys):
    out = tmp_path / "export"
    code, _, err = _export(capsys, study_dirs, out)
    assert code == 0, err
    assert validate_dataset(out) == []
    files = _all_files(out)
    assert any(p.name == "thrombus.seg.nrrd" for p in files)
    for path in files:
        rel = str(path.relative_to(out)).encode()
        data = path.read_bytes()
        for ident in IDENTIFIERS:
            assert ident not in rel, (path, ident)
            assert ident not in data, (path, ident)
        if path.suffix == ".nrrd":
            lines = _nrrd_header(path).lower().split(b"\n")[1:]
            keys = [line.split(b":")[0] for line in lines if not line.startswith(b"#")]
            for word in (b"patient", b"0010|", b"0008|", b"0020|", b"dicom", b"series", b"study", b"birth"):
                assert not [k for k in keys if word in k], (path, word, keys)
    doc = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert doc["deidentified"] is True
    by_status = {c["status"] for c in doc["cases"]}
    assert by_status == {"reviewed"}
    dicom_case = next(c for c in doc["cases"] if c.get("segmentation"))
    assert dicom_case["id"].startswith("case-") and dicom_case["patient"].startswith("patient-")
    assert dicom_case["prediction"]["model"]["id"] == "m"
    assert "input" not in dicom_case["prediction"]          # paths from result.json are not copied
    assert all(label["stage"] for c in doc["cases"] for label in c["labels"])
    assert all(c["annotator"] == "dr x" for c in doc["cases"])
    # the same studies give the same pseudonyms
    again = tmp_path / "again"
    assert _export(capsys, study_dirs, again)[0] == 0
    assert [c.id for c in load_dataset(again).cases] == [c["id"] for c in doc["cases"]]


def test_keep_identifiers_keeps_them_in_dataset_json(study_dirs, tmp_path, capsys):
    out = tmp_path / "export"
    code, _, err = _export(capsys, study_dirs, out, "--keep-identifiers")
    assert code == 0, err
    text = (out / "dataset.json").read_bytes()
    for ident in IDENTIFIERS:
        assert ident in text
    doc = json.loads(text)
    assert doc["deidentified"] is False
    assert any(c.get("patient") == PID for c in doc["cases"])
    for path in _all_files(out / "cases"):       # the case files stay clean
        assert all(ident not in path.read_bytes() for ident in IDENTIFIERS)
    assert validate_dataset(out) == []


def test_reexport_refuses_without_overwrite(study_dirs, tmp_path, capsys):
    out = tmp_path / "export"
    assert _export(capsys, study_dirs, out)[0] == 0
    before = (out / "dataset.json").read_text(encoding="utf-8")
    code, stdout, err = _export(capsys, study_dirs[:1], out)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (out / "dataset.json").read_text(encoding="utf-8") == before
    code, _, err = _export(capsys, study_dirs[:1], out, "--overwrite")
    assert code == 0, err
    assert len(load_dataset(out).cases) == 2
    assert validate_dataset(out) == [] and verify_manifest(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]


def test_manifest_records_every_file(study_dirs, tmp_path, capsys):
    out = tmp_path / "export"
    assert _export(capsys, study_dirs, out)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = {rel: digest for files in manifest["cases"].values() for rel, digest in files.items()}
    on_disk = {str(p.relative_to(out)) for p in _all_files(out / "cases")}
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert set(manifest["cases"]) == {c.id for c in load_dataset(out).cases}
    (out / sorted(listed)[0]).write_bytes(b"tampered")
    assert verify_manifest(out)


def test_crash_midway_leaves_a_valid_dataset(study_dirs, tmp_path, monkeypatch):
    studies = [export_mod.read_study_folder(d) for d in study_dirs]
    real = export_mod._write_case_files
    calls = []

    def flaky(study, folder):
        calls.append(folder)
        if len(calls) == 2:
            real(study, folder)                   # files half there, then the process "dies"
            raise KeyboardInterrupt
        return real(study, folder)

    monkeypatch.setattr(export_mod, "_write_case_files", flaky)
    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        export_cases(studies, out, progress=False)
    assert validate_dataset(out) == []
    dataset = load_dataset(out)
    assert len(dataset.cases) == 1
    assert [p.name for p in (out / "cases").iterdir()] == [dataset.cases[0].id]
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]
    assert verify_manifest(out) == []
    # a later export finishes the job (the finished case needs --overwrite)
    monkeypatch.setattr(export_mod, "_write_case_files", real)
    export_cases(studies[1:], out, progress=False)
    assert len(load_dataset(out).cases) == 2 and validate_dataset(out) == []


def test_nnunet_view(study_dirs, tmp_path, capsys):
    out = tmp_path / "export"
    assert _export(capsys, study_dirs, out)[0] == 0
    nn = tmp_path / "Dataset501_DVT"
    assert main(["dataset", "nnunet", str(out), "--out", str(nn)]) == 0
    doc = json.loads((nn / "dataset.json").read_text(encoding="utf-8"))
    assert doc["labels"] == {"background": 0, "thrombus": 1}
    assert doc["channel_names"] == {"0": "BTI"} and doc["file_ending"] == ".nii.gz" and doc["numTraining"] == 1
    images = sorted((nn / "imagesTr").iterdir())
    labels = sorted((nn / "labelsTr").iterdir())
    assert len(images) == len(labels) == 1
    assert images[0].name == labels[0].name.replace(".nii.gz", "_0000.nii.gz")
    image, label = read_volume(images[0]), read_volume(labels[0])
    assert image.same_geometry(label)
    assert set(np.unique(label.array).tolist()) == {0, 1}
    capsys.readouterr()
    assert main(["dataset", "nnunet", str(out), "--out", str(nn)]) == 2          # refuses to replace
    assert "--overwrite" in capsys.readouterr().err


def test_round_trip_export_train_stage(phantom_dataset, tmp_path, monkeypatch):
    from DVTStagingLib.models.config import VDPF_TINY
    from DVTStagingLib.training.train import run_training

    ds = phantom_dataset
    studies = []
    for case in ds.cases:
        volume = read_volume(ds.path(case.image))
        rois = _case_rois(ds, case)
        studies.append(ExportStudy(volume=volume, rois=rois, labels=[dict(label) for label in case.labels],
                                   status="labeled", annotator="phantom", thrombus_mask=_thrombus_mask(ds, case),
                                   source_id=f"phantom/{case.id}", split=case.split))
    out = tmp_path / "export"
    exported = export_cases(studies, out, progress=False)
    assert validate_dataset(out) == []
    assert sorted(c.split for c in exported.cases) == sorted(c.split for c in ds.cases)
    monkeypatch.setenv("DVT_STAGING_MODELS", str(tmp_path / "catalogue"))
    card = run_training(out, VDPF_TINY, tmp_path / "run", seed=1, epochs=1, model_id="export-tiny", publish=True)
    assert card is not None and (tmp_path / "catalogue" / "export-tiny.json").is_file()
    case = exported.cases[0]
    code = main(["stage", str(out / case.image), "--roi", str(out / case.rois[0]), "--model", "export-tiny",
                 "--device", "cpu", "--out", str(tmp_path / "staged")])
    assert code == 0
    result = json.loads((tmp_path / "staged" / "result.json").read_text(encoding="utf-8"))
    assert result["model"]["id"] == "export-tiny"


def test_logic_export_studies(slicer_app, tmp_path):
    """DVTStagingLogic.exportStudies: the module's nodes and annotations become a valid dataset."""
    pytest.importorskip("slicer")
    import slicer
    from DVTStagingLib.phantom.study import make_study
    from DVTStagingLib.phantom.writer import write_study
    from slicer_module_stubs import import_module_file

    study = make_study(3, ["acute"])
    files = write_study(study, tmp_path / "study")
    dvt = import_module_file()
    slicer.app.cachePath = str(tmp_path / "cache")
    logic = dvt.DVTStagingLogic()
    try:
        volume = slicer_app.logic("Volumes").AddArchetypeVolume(str(tmp_path / "study" / files["image"]), "study")
        truth = study.rois[0]
        roi = logic.addROI(volume, truth.name, center=truth.center_ras.tolist(), size=truth.size_mm.tolist())
        logic.setTrueStage(roi, "acute")
        logic.setReviewed(volume, True)
        dataset = logic.exportStudies([volume], tmp_path / "export")
        assert validate_dataset(tmp_path / "export") == []
        case = dataset.cases[0]
        assert case.status == "reviewed" and case.labels == [{"roi": truth.name, "stage": "acute"}]
        with pytest.raises(Exception, match="overwrite"):
            logic.exportStudies([volume], tmp_path / "export")
        assert logic.exportStudies([volume], tmp_path / "export", overwrite=True).cases[0].id == case.id
    finally:
        logic.cleanup()


@pytest.mark.slow
def test_research_round_trip_scene_export_ddp_train_evaluate_catalogue_stage(slicer_app, phantom_dataset, tmp_path,
                                                                           monkeypatch):
    """Issue 6 must-show: scene -> labeled -> exported -> validated -> DDP-trained -> evaluated -> catalogue -> stage."""
    pytest.importorskip("slicer")
    import os
    import subprocess
    import sys

    import slicer
    from DVTStagingLib.models.catalog import list_models
    from slicer_module_stubs import import_module_file

    ds = phantom_dataset
    dvt = import_module_file()
    slicer.app.cachePath = str(tmp_path / "cache")
    logic = dvt.DVTStagingLogic()
    try:
        volumes = []
        for case in ds.cases:          # an annotator's session: load, place ROIs, set the true stage, review
            volume = slicer_app.logic("Volumes").AddArchetypeVolume(str(ds.path(case.image)), case.id)
            for roi in _case_rois(ds, case):
                node = logic.addROI(volume, roi.name, center=roi.center_ras.tolist(), size=roi.size_mm.tolist())
                logic.setTrueStage(node, case.stage_of(roi.name))
            logic.setReviewed(volume, True)
            volumes.append(volume)
        out = tmp_path / "export"
        logic.exportStudies(volumes, out)
    finally:
        logic.cleanup()
    assert validate_dataset(out) == []
    assert main(["dataset", "split", str(out), "--by", "patient", "--seed", "0"]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1", DVT_STAGING_MODELS=str(tmp_path / "catalogue"))
    train = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "DVTStagingLib", "train", "--data", str(out), "--config", "vdpf-tiny", "--out", str(tmp_path / "run"),
             "--epochs", "1", "--model-id", "round-trip", "--device", "cpu"]
    proc = subprocess.run(train, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = [sys.executable, "-m", "DVTStagingLib"]
    proc = subprocess.run(cli + ["evaluate", "--data", str(out), "--model", "round-trip", "--split", "val",
                                 "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "macro_f1" in json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))["staging"]
    monkeypatch.setenv("DVT_STAGING_MODELS", env["DVT_STAGING_MODELS"])
    assert "round-trip" in {e.id for e in list_models("staging")}
    exported = load_dataset(out)
    case = exported.cases[0]
    proc = subprocess.run(cli + ["stage", str(out / case.image), "--roi", str(out / case.rois[0]), "--model", "round-trip",
                                 "--device", "cpu", "--out", str(tmp_path / "staged")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "staged" / "result.json").read_text(encoding="utf-8"))
    assert result["model"]["id"] == "round-trip"

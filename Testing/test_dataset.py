"""Dataset format: validation finds what is wrong, with a message that says where."""

from __future__ import annotations

import json
import shutil

import pytest
from DVTStagingLib.core.errors import InputFileError
from DVTStagingLib.io.dataset import load_dataset, validate_dataset
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois


@pytest.fixture
def dataset_copy(phantom_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(phantom_dataset.root, root)
    return root


def edit(root, change):
    doc = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    change(doc)
    (root / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")


def only_problem(root, deep=True):
    problems = validate_dataset(root, deep=deep)
    assert len(problems) >= 1, "validation should have failed"
    return " | ".join(problems)


def test_valid_dataset_loads(phantom_dataset):
    ds = load_dataset(phantom_dataset.root)
    assert ds.classes == ("acute", "subacute", "chronic")
    assert len(ds.cases) == 5 and all(c.labels for c in ds.cases)


def test_wrong_schema_id_is_refused(dataset_copy):
    edit(dataset_copy, lambda d: d.update(schema="something-else@9"))
    with pytest.raises(InputFileError, match="expected 'dvt-staging/dataset@1'"):
        validate_dataset(dataset_copy)


def test_unknown_stage_and_missing_field(dataset_copy):
    def change(d):
        d["cases"][0]["labels"][0]["stage"] = "ancient"
        del d["cases"][1]["image"]
    edit(dataset_copy, change)
    msg = only_problem(dataset_copy)
    assert "'image' is a required property" in msg


def test_stage_outside_classes(dataset_copy):
    edit(dataset_copy, lambda d: d["cases"][0]["labels"][0].update(stage="ancient"))
    assert "stage 'ancient'" in only_problem(dataset_copy)


def test_duplicate_ids_and_missing_files(dataset_copy):
    def change(d):
        d["cases"][1]["id"] = d["cases"][0]["id"]
        d["cases"][2]["rois"] = ["cases/nowhere.mrk.json"]
    edit(dataset_copy, change)
    msg = only_problem(dataset_copy)
    assert "duplicate case id" in msg and "missing file cases/nowhere.mrk.json" in msg


def test_paths_may_not_leave_the_dataset(dataset_copy):
    edit(dataset_copy, lambda d: d["cases"][0].update(image="../../etc/passwd"))
    assert "cases/0/image" in only_problem(dataset_copy)


def test_roi_without_label_and_thrombus_outside_rois(dataset_copy):
    ds = load_dataset(dataset_copy)
    case = ds.cases[0]
    roi_file = ds.path(case.rois[0])
    roi = read_rois(roi_file)[0]
    # Shrink the ROI to a corner of itself: thrombus voxels now lie outside every ROI.
    small = BoxROI(roi.name, roi.center_ras + roi.axes_ras @ (roi.size_mm * 0.4), roi.size_mm * 0.1, roi.axes_ras)
    extra = BoxROI("unlabelled", roi.center_ras + roi.axes_ras @ (roi.size_mm * -0.4), roi.size_mm * 0.1, roi.axes_ras)
    write_rois(roi_file, [small, extra])
    msg = only_problem(dataset_copy)
    assert "thrombus voxels lie outside every ROI" in msg
    assert "ROI 'unlabelled' has no label record" in msg


def test_corrupt_image_is_reported(dataset_copy):
    ds = load_dataset(dataset_copy)
    image = ds.path(ds.cases[0].image)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])
    assert ds.cases[0].id in only_problem(dataset_copy)


def test_segmentation_on_another_grid_is_reported(dataset_copy):
    ds = load_dataset(dataset_copy)
    a, b = ds.cases[0], ds.cases[1]
    shutil.copy(ds.path(b.segmentation), ds.path(a.segmentation))
    assert "segmentation grid differs" in only_problem(dataset_copy)

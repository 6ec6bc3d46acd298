"""The synthetic BTI phantom: determinism, the stage cues it promises, geometry variety, ROIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from DVTStagingLib.core.errors import UserError
from DVTStagingLib.core.stages import STAGES
from DVTStagingLib.imaging.signal_ratio import thrombus_muscle_ratio
from DVTStagingLib.io.dataset import validate_dataset
from DVTStagingLib.io.segmentation import EDEMA, MUSCLE, THROMBUS
from DVTStagingLib.io.volume import read_volume
from DVTStagingLib.phantom.cues import CUES
from DVTStagingLib.phantom.spec import sample_acquisition, sample_subject, sample_thrombus
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import plan_cases, stage_counts, write_phantom_dataset


def test_same_seed_same_study_and_other_seed_differs():
    a = make_study(123, ["acute"])
    b = make_study(123, ["acute"])
    c = make_study(124, ["acute"])
    assert np.array_equal(a.volume.array, b.volume.array)
    assert np.array_equal(a.labels, b.labels)
    assert a.truth == b.truth
    assert a.rois[0].to_dict() == b.rois[0].to_dict()
    assert a.volume.array.shape != c.volume.array.shape or not np.array_equal(a.volume.array, c.volume.array)


def test_dataset_does_not_depend_on_worker_count(tmp_path):
    one = write_phantom_dataset(tmp_path / "one", 3, seed=5, workers=1, show_progress=False)
    two = write_phantom_dataset(tmp_path / "two", 3, seed=5, workers=2, show_progress=False)
    assert [c.to_json() for c in one.cases] == [c.to_json() for c in two.cases]
    for a, b in zip(one.cases, two.cases):
        assert np.array_equal(read_volume(one.path(a.image)).array, read_volume(two.path(b.image)).array)


def test_writing_refuses_to_overwrite_without_permission(tmp_path):
    (tmp_path / "mine.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(Exception, match="not empty"):
        write_phantom_dataset(tmp_path, 1, seed=1, workers=1, show_progress=False)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "precious"


def test_case_mix_follows_the_paper():
    assert stage_counts(100) == {"acute": 19, "subacute": 60, "chronic": 21}
    plans = plan_cases(60, seed=3)
    primary = [p["stages"][0] for p in plans]
    assert {s: primary.count(s) for s in STAGES} == stage_counts(60)
    splits = [p["split"] for p in plans]
    # Stratified per stage, so each split is within rounding of 60/20/20.
    assert abs(splits.count("train") - 36) <= 1 and abs(splits.count("val") - 12) <= 1 and abs(splits.count("test") - 12) <= 1
    assert any(len(p["stages"]) == 2 for p in plans)  # bilateral studies occur


def test_drawn_cues_follow_the_stage_table():
    rng = np.random.default_rng(0)
    ratios = {s: np.array([sample_thrombus(rng, s, "left", (-300.0, -100.0)).ratio for _ in range(3000)])
              for s in STAGES}
    for stage, r in ratios.items():
        lo, hi = CUES[stage].ratio_clip
        iso = CUES[stage].iso_fraction
        assert r.max() <= hi + 1e-9 and r.min() >= min(lo, 0.95 if iso else lo) - 1e-9
    assert ratios["acute"].mean() > ratios["subacute"].mean() + 0.4 > ratios["chronic"].mean() + 0.8
    # 15-20% of acute thrombi are nearly iso-intense to muscle.
    assert 0.13 < np.mean(ratios["acute"] < 1.3) < 0.26
    # Stages overlap: a thrombus ratio alone cannot separate them.
    assert np.mean((ratios["chronic"] > 1.8)) > 0.1 and np.mean(ratios["subacute"] < 1.4) > 0.15
    draws = {s: [sample_thrombus(rng, s, "left", (-300.0, -100.0)) for _ in range(500)] for s in STAGES}
    assert all(t.edema_mm == 0 for t in draws["chronic"])
    assert np.mean([t.edema_mm > 0 for t in draws["acute"]]) > 0.75
    assert np.mean([t.vein_scale for t in draws["acute"]]) > np.mean([t.vein_scale for t in draws["chronic"]]) + 0.3
    assert all(len(t.channels) >= 2 and t.wall_thickening_mm >= 1.0 for t in draws["chronic"])


def test_acquisitions_vary_orientation_storage_and_field_of_view():
    rng = np.random.default_rng(1)
    acqs = [sample_acquisition(rng, sample_subject(rng)) for _ in range(80)]
    assert {a.stack for a in acqs} == {"axial", "coronal"}
    assert any(a.oblique_deg > 0 for a in acqs) and any(a.oblique_deg == 0 for a in acqs)
    # Both LPS-like and RAS-like storage (first axis along +L or +R).
    first_axis_x = [np.asarray(a.direction_lps)[0, 0] for a in acqs if a.oblique_deg == 0]
    assert min(first_axis_x) < 0 < max(first_axis_x)
    assert max(a.gain for a in acqs) / min(a.gain for a in acqs) > 2.5
    assert len({tuple(a.size) for a in acqs}) > 40


@pytest.fixture(scope="module")
def rendered_studies():
    studies = []
    for n in range(15):
        stage = STAGES[n % 3]
        studies.append((stage, make_study(5000 + n, [stage])))
    return studies


def test_measured_thrombus_muscle_ratio_matches_the_drawn_one(rendered_studies):
    drawn, measured, by_stage = [], [], {s: [] for s in STAGES}
    for stage, study in rendered_studies:
        m = thrombus_muscle_ratio(study.volume.array, study.instances == 1, study.labels == MUSCLE)
        drawn.append(study.truth["thrombi"][0]["ratio"])
        measured.append(m)
        by_stage[stage].append(m)
    drawn, measured = np.array(drawn), np.array(measured)
    assert np.corrcoef(drawn, measured)[0, 1] > 0.9
    assert np.median(np.abs(measured / drawn - 1)) < 0.12
    means = {s: np.mean(v) for s, v in by_stage.items()}
    assert means["acute"] > means["subacute"] > means["chronic"]
    assert 0.8 < means["chronic"] < 2.0


def test_absolute_intensity_does_not_give_the_stage_away(rendered_studies):
    raw = {s: [] for s in STAGES}
    muscle_levels = []
    for stage, study in rendered_studies:
        raw[stage].append(float(np.median(study.volume.array[study.instances == 1])))
        muscle_levels.append(float(np.median(study.volume.array[study.labels == MUSCLE])))
    assert max(muscle_levels) / min(muscle_levels) > 1.8
    # Raw thrombus signal of chronic studies overlaps the acute range.
    assert max(raw["chronic"]) > min(raw["acute"])


def test_edema_surrounds_acute_thrombi_only(rendered_studies):
    for stage, study in rendered_studies:
        roi_mask = study.rois[0].voxel_mask(study.volume)
        edema = int(((study.labels == EDEMA) & roi_mask).sum())
        if stage == "chronic":
            assert edema == 0
        if stage == "acute" and study.truth["thrombi"][0]["edema_mm"] > 3:
            assert edema > 0


def test_thrombus_lies_inside_its_roi_oriented_like_the_volume(rendered_studies):
    for _, study in rendered_studies:
        for n, roi in enumerate(study.rois, start=1):
            thrombus = study.instances == n
            assert thrombus.any()
            assert not (thrombus & ~roi.voxel_mask(study.volume)).any()
            np.testing.assert_allclose(roi.axes_ras, study.volume.direction_ras, atol=1e-9)
        assert ((study.labels == THROMBUS) == (study.instances > 0)).all()


def test_phantom_dataset_is_valid_and_documents_its_truth(phantom_dataset):
    assert validate_dataset(phantom_dataset.root) == []
    for case in phantom_dataset.cases:
        truth = json.loads(phantom_dataset.path(case.extra["truth"]).read_text(encoding="utf-8"))
        assert [t["stage"] for t in truth["thrombi"]] == [label["stage"] for label in case.labels]


def test_an_interrupted_phantom_run_resumes_to_the_same_dataset(tmp_path):
    fresh = write_phantom_dataset(tmp_path / "fresh", 3, seed=21, workers=1, show_progress=False)
    resumed_root = tmp_path / "resumed"
    write_phantom_dataset(resumed_root, 3, seed=21, workers=1, show_progress=False)
    # interrupted: no dataset.json yet, one case half written (its truth.json, written last, missing)
    (resumed_root / "dataset.json").unlink()
    half = resumed_root / "cases" / fresh.cases[1].id
    (half / "truth.json").unlink()
    (half / "image.nrrd").write_bytes(b"truncated")
    cut = resumed_root / "cases" / fresh.cases[2].id / "truth.json"
    cut.write_text(cut.read_text(encoding="utf-8")[:40], encoding="utf-8")    # cut off while written
    resumed = write_phantom_dataset(resumed_root, 3, seed=21, workers=1, show_progress=False, resume=True)
    assert [c.to_json() for c in resumed.cases] == [c.to_json() for c in fresh.cases]
    assert np.array_equal(read_volume(half / "image.nrrd").array, read_volume(fresh.root / fresh.cases[1].image).array)
    assert validate_dataset(resumed_root) == []
    # a finished dataset is not "resumed", and a case folder another run drew is not taken for this one
    with pytest.raises(UserError, match="no interrupted phantom run"):
        write_phantom_dataset(resumed_root, 3, seed=21, workers=1, show_progress=False, resume=True)
    (resumed_root / "dataset.json").unlink()
    truth_file = resumed_root / "cases" / fresh.cases[0].id / "truth.json"
    truth_file.write_text(json.dumps(dict(json.loads(truth_file.read_text()), seed=1)), encoding="utf-8")
    with pytest.raises(UserError, match="another phantom run"):
        write_phantom_dataset(resumed_root, 3, seed=21, workers=1, show_progress=False, resume=True)


def test_no_periodic_texture_in_the_fat_or_muscle_of_the_training_style():
    """The spectral check of Testing/test_phantom_fields.py on the training style's swollen acute legs (the fat
    carries the subcutaneous edema), on the axial slice through the thrombus (thigh anatomy runs across it)."""
    from DVTStagingLib.imaging.planes import orientation_for
    from DVTStagingLib.phantom.spec import sample_case
    from DVTStagingLib.phantom.texture_check import PERIODIC_LIMIT, tissue_peak_ratios

    swollen = [s for s in range(7100, 7160)
               if any(leg.subcutaneous_edema > 0 for leg in sample_case(s, ["acute"]).subject.legs)][:2]
    assert len(swollen) == 2
    ratios = []
    for seed in swollen:
        study = make_study(seed, ["acute"])
        view = orientation_for(study.volume, "axial")
        image, labels = view.apply(study.volume.array).astype(np.float32), view.apply(study.labels)
        k = int(np.argmax((view.apply(study.instances) == 1).sum(axis=(1, 2))))
        ratios.append(tissue_peak_ratios(image[k], labels[k]))
    assert all(np.isfinite(r[t]) and r[t] < PERIODIC_LIMIT for r in ratios for t in ("fat", "muscle")), ratios


@pytest.mark.parametrize("seed", [30692, 30740])
def test_a_thrombus_as_long_as_the_field_of_view_is_still_drawn(seed):
    """These seeds draw a thrombus that fills the covered length; rounding once made its room to move a hair
    below zero and the whole study failed to draw."""
    from DVTStagingLib.phantom.spec import sample_case, z_coverage

    case = sample_case(seed, ["subacute"])
    z_lo, z_hi = z_coverage(case.acquisition)
    t = case.thrombi[0]
    assert z_lo + 6 - 1e-6 <= t.z_center - t.length / 2 and t.z_center + t.length / 2 <= z_hi - 6 + 1e-6


def test_perivascular_edema_darkens_tissue_as_on_t1_never_a_bright_ring():
    """On T1 the fluid of edema lengthens T1: it lowers the fat's signal and a little the muscle's, and never
    brightens anything (a bright halo is what T2 or STIR shows). The same acute study drawn with and without
    its thrombus's edema, before the scanner's noise: wherever the two differ, the edema's is darker."""
    import copy

    from DVTStagingLib.phantom.render import render
    from DVTStagingLib.phantom.spec import sample_case

    spec = next(s for s in (sample_case(seed, ["acute"]) for seed in range(5000, 5040)) if s.thrombi[0].edema_mm > 4)
    dry = copy.deepcopy(spec)
    dry.thrombi[0].edema_mm = 0.0
    with_edema, without = render(spec), render(dry)
    change = with_edema.intensity - without.intensity
    touched = with_edema.labels == EDEMA
    assert touched.sum() > 100 and np.median(change[touched]) < -0.1
    assert change.max() <= 1e-4, float(change.max())

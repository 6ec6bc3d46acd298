"""The answer first (issue 20): `stage` writes result.json as soon as the stage is known, then completes it.

With the bundled model on the demo phantom study (seed 2024, its true ROI): the two-step run gives the
result.json of the one-step path (the network run under inference_mode, the evidence pass with a forward of
its own) and the numbers the code gave before the change; a reader polling result.json all along only ever
sees a whole, schema-valid file: first the answer (overlays `pending`), then the complete result.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from DVTStagingLib.io.volume import read_volume
from DVTStagingLib.models.catalog import bundled_dir
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.staging.outputs import OVERLAY_FILES, PENDING, REPORT_FILE, ROIS_FILE, read_stage_result
from DVTStagingLib.staging.results import CHECK_RATIO, validate_result

pytestmark = pytest.mark.skipif(not (bundled_dir() / "vdpf-small-phantom.json").is_file(),
                                reason="the bundled staging model is not installed")

# The demo study's numbers from the code before the two-step change (commit 01b0397), bundled model, CPU.
# Re-measured with that commit's `stage` when the phantom's fat and muscle textures became random fields and
# its perivascular edema T1-dark (2026-12-07: the study's pixels changed; 01b0397 gave ood_score 23.561 on the
# study drawn before).
BEFORE = {"stage": "acute", "acute": 1.0, "subacute": 2.870472791655812e-27, "chronic": 3.4762954358624266e-31,
          "thrombus_probability": 1.0, "ood_score": 23.516, "slices": 21}
# Its thrombus was drawn with a thrombus/muscle ratio of 3.267 (truth.json).  The box estimate of the ratio
# changed since 01b0397 (2.522 then; imaging.signal_ratio), so it is held to the drawn value instead.
DRAWN_RATIO = 3.267


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from DVTStagingLib.core.progress import redirected
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.staging.inference import Stager
    from DVTStagingLib.staging.pipeline import load_stage_inputs, stage_study

    folder = tmp_path_factory.mktemp("answer-first")
    files = write_study(make_study(2024, ["acute"]), folder / "study")
    image, roi = folder / "study" / files["image"], folder / "study" / files["rois"][0]
    stager, detector = Stager(None, "cpu"), load_detector(None, "cpu")
    out = folder / "out"
    seen, bad, stop = [], [], threading.Event()

    def reader():           # what a reader polling the file finds, each distinct content once, in order
        while True:
            last_round = stop.is_set()           # one more read after the run has ended
            try:
                text = (out / "result.json").read_text(encoding="utf-8")
            except FileNotFoundError:
                text = None
            if text is not None and (not seen or seen[-1] != text):
                try:
                    problems = validate_result(json.loads(text))
                except ValueError as exc:
                    problems = [str(exc)]
                (bad if problems else seen).append(problems or text)
            if last_round:
                return
            time.sleep(0.002)

    answers, lines = [], []
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        with redirected(lines.append):
            result = stage_study(image, out, roi_path=roi, device="cpu", stager=stager, detector=detector,
                                 on_answer=answers.append)
    finally:
        stop.set()
        thread.join(timeout=10)
    volume, rois = load_stage_inputs(image, roi, False)
    return {"result": result, "answers": answers, "seen": [json.loads(t) for t in seen], "bad": bad, "out": out,
            "lines": lines, "stager": stager, "detector": detector, "volume": volume, "rois": rois, "image": image, "roi": roi}


def _content(result: dict) -> dict:
    """What must not change: result.json but its timings, input path, outputs and pending list."""
    return {k: v for k, v in result.items() if k not in ("timings", "outputs", PENDING)} | \
        {"input": {k: v for k, v in result["input"].items() if k != "path"}}


def test_result_json_is_never_seen_half_written(run):
    assert run["bad"] == []
    first, last = run["seen"][0], run["seen"][-1]
    assert len(run["seen"]) == 2, [sorted(s) for s in run["seen"]]          # the answer, then the complete file
    assert first[PENDING] == [*OVERLAY_FILES.values(), REPORT_FILE] and first["outputs"] == {"rois": ROIS_FILE}
    assert PENDING not in last and last == json.loads((run["out"] / "result.json").read_text(encoding="utf-8"))
    assert _content(first) == _content(last)        # the overlays add files, never change the answer
    assert run["answers"] == [first]                # on_answer got what the file held
    # The stage line is printed when the answer is there, before the overlays are written.
    stage_line = next(n for n, ln in enumerate(run["lines"]) if ln.startswith("stage: thrombus-1: acute"))
    assert any(ln.startswith("stage: wrote result.json") for ln in run["lines"][stage_line + 1:])
    assert read_stage_result(run["out"]).pending == []


def test_the_two_step_run_gives_the_one_step_result(run):
    """Same result.json as the one-step path (network under inference_mode, its own evidence forward), the
    same attention volumes, the evidence map within float rounding (its gradient now flows through the
    attention-weight path of the answer's forward instead of the fused attention kernel, and it is smoothed
    by scipy instead of a torch convolution), and the numbers of the code before the change."""
    import torch
    from DVTStagingLib.models.catalog import resolve
    from DVTStagingLib.staging.attention import attention_volume
    from DVTStagingLib.staging.evidence import evidence_maps, evidence_volume
    from DVTStagingLib.staging.results import build_result

    stager = run["stager"]
    study, results = stager.answer(run["volume"], run["rois"], detector=run["detector"], show_progress=False,
                                   keep_graph=False)
    assert all(r.graph is None for r in results)
    reference = build_result(study, results, stager.classes, resolve(None, "staging"), "cpu", str(run["image"]),
                             {}, trust=stager.trust)
    reference["detector"] = {"id": run["detector"].model_id, "sha256": run["detector"].sha256}  # stage records it
    assert _content(run["result"]) == _content(reference)
    for which, name in OVERLAY_FILES.items():
        if which != "evidence":
            expected = attention_volume(study, results, which).array
            assert np.array_equal(read_volume(run["out"] / name).array, expected), which
    for r in results:
        r.evidence = evidence_maps(stager, study, r.pairs, int(np.argmax(r.probabilities)))
    written = read_volume(run["out"] / OVERLAY_FILES["evidence"]).array
    np.testing.assert_allclose(written, evidence_volume(study, results).array, rtol=0, atol=1e-5)
    assert torch.is_grad_enabled()                   # nothing leaked out of the kept forward
    r0 = run["result"]["rois"][0]
    assert run["result"]["stage"] == r0["stage"] == BEFORE["stage"] and len(r0["slices"]) == BEFORE["slices"]
    for c in ("acute", "subacute", "chronic"):
        assert r0["probabilities"][c] == pytest.approx(BEFORE[c], rel=1e-4)
    for key in ("thrombus_probability", "ood_score"):
        assert r0[key] == pytest.approx(BEFORE[key], rel=1e-4), key
    assert r0["thrombus_muscle_ratio"] == pytest.approx(DRAWN_RATIO, rel=0.05)
    assert r0["thrombus_muscle_ratio_method"] == CHECK_RATIO     # a given ROI: the content check's thrombus pixels


def test_the_answer_keeps_the_forward_for_the_evidence_within_its_budget(run, monkeypatch):
    """On a CPU the answer's forward is kept for the evidence pass; past its memory budget the rest of the ROI
    runs without gradients and the evidence pass makes its own forward; the answer is the same."""
    from DVTStagingLib.staging.inference import Stager

    stager = run["stager"]
    _, kept = stager.answer(run["volume"], run["rois"], show_progress=False, keep_graph=True)
    assert kept[0].graph is not None and stager.keeps_graph
    monkeypatch.setattr(Stager, "batch_size", property(lambda self: 8))      # three batches of this ROI
    monkeypatch.setattr(stager, "keep_graph_bytes", 1)                       # nothing fits
    _, dropped = stager.answer(run["volume"], run["rois"], show_progress=False, keep_graph=True)
    assert dropped[0].graph is None
    # the same numbers within float rounding: the batches differ in size (8 against 32 slices), and oneDNN
    # picks its kernels by batch size on some CPUs, so the last bits may differ
    np.testing.assert_allclose(kept[0].slice_probabilities, dropped[0].slice_probabilities, rtol=1e-4, atol=1e-12)
    assert kept[0].stage(stager.classes) == dropped[0].stage(stager.classes)
    monkeypatch.setattr(stager, "keep_graph_bytes", 0)                       # the service's batching executor
    assert not stager.keeps_graph


def test_the_service_streams_the_answer_before_the_overlay_files(run, tmp_path):
    """The service's job (its task run in this thread, the server's warm models): the answer event is emitted
    when the job's folder holds result.json (overlays pending) and the ROIs but no overlay file and no report;
    they are written after it, and the job's final result is the answer completed."""
    from DVTStagingLib.core.progress import redirected
    from DVTStagingLib.service import protocol as p
    from DVTStagingLib.service import tasks
    from DVTStagingLib.service.jobs import Job
    from DVTStagingLib.service.models_cache import ModelCache

    job = Job("stage", tmp_path / "job", "answer-first")
    job.out_dir.mkdir(parents=True)
    image, roi = run["image"], run["roi"]
    tasks.describe_paths(job, image, None, roi)
    models = ModelCache(None, "cpu")
    tasks.prepare_stage(job, models, image, roi, False, None, "cpu", "detector-phantom")   # the detector named
    on_disk = {}
    emit = job.emit

    def watched(event):             # what the job's folder holds when each answer event leaves
        if event.get("event") == p.ANSWER:
            on_disk["names"] = sorted(n.name for n in job.out_dir.iterdir())
            on_disk["result.json"] = json.loads((job.out_dir / "result.json").read_text(encoding="utf-8"))
        emit(event)

    job.emit = watched
    with redirected(job.line):
        tasks.run(job, models)
    kinds = [e["event"] for e in job.events]
    assert kinds.count(p.ANSWER) == 1
    answer = job.events[kinds.index(p.ANSWER)]
    assert on_disk["names"] == ["result.json", ROIS_FILE]             # no overlay, no report yet
    assert on_disk["result.json"][PENDING] == [*OVERLAY_FILES.values(), REPORT_FILE]
    assert answer["result"][PENDING] == on_disk["result.json"][PENDING]
    assert answer["files"] == {ROIS_FILE: (job.out_dir / ROIS_FILE).read_text(encoding="utf-8")}
    assert str(job.folder) not in json.dumps(answer)                      # server paths scrubbed
    assert answer["result"]["input"]["path"] == p.INPUT
    assert answer["result"]["detector"]["id"] == "detector-phantom"       # the request's detector, in the answer
    # The stage line follows the answer; the overlays and the report come after it.
    stage_line = next(n for n, e in enumerate(job.events) if e.get("message", "").startswith("stage: thrombus-1:"))
    assert kinds.index(p.ANSWER) < stage_line
    assert set(OVERLAY_FILES.values()) | {REPORT_FILE} <= set(job.outputs)
    assert PENDING not in job.result and _content(job.result) == _content(answer["result"])

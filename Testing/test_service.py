"""The staging service end to end, on loopback only: a real `dvt-staging serve` child process (port 0) and the
`--server` client as a user runs it.  Same outputs as local staging, streamed progress, cancel, tokens, upload
limits, a server killed mid-request, and nothing written outside the server's job folders.  Every wait is
bounded in time (docs/service.md)."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from DVTStagingLib.cli import main
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois
from DVTStagingLib.io.volume import Volume, read_volume, write_volume
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.service import protocol as p
from DVTStagingLib.staging.outputs import OVERLAY_FILES, ROIS_FILE
from service_helpers import Server, cli_env, run_cli, start_cli, wait_until
from test_cli import bad_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A phantom study with its one thrombus ROI, and the same image with 24 ROIs (a job that takes a while)."""
    folder = tmp_path_factory.mktemp("service-study")
    files = write_study(make_study(31, ["chronic"]), folder)
    roi_file = folder / files["rois"][0]
    truth = read_rois(roi_file)[0]
    rng = np.random.default_rng(2)
    write_rois(folder / "many.mrk.json", [BoxROI(f"r{n}", truth.center_ras + rng.normal(0, 4, 3), truth.size_mm,
                                                 truth.axes_ras) for n in range(24)])
    return {"image": folder / files["image"], "roi": roi_file, "many": folder / "many.mrk.json", "folder": folder}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service-server")
    srv = Server(folder, "--work-dir", folder / "work")
    yield srv
    srv.stop()


def _jobs_dir(srv) -> Path:
    return srv.folder / "work" / "jobs"


def _messages(stderr: str) -> list[str]:
    """What a run said on stderr, without its progress lines."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("progress:")]


def _same_outputs(local: Path, remote: Path) -> None:
    assert sorted(os.listdir(local)) == sorted(os.listdir(remote))
    a = json.loads((local / "result.json").read_text())
    b = json.loads((remote / "result.json").read_text())
    a.pop("timings"), b.pop("timings")
    assert a == b                                   # stages, probabilities, slices, input path, model, outputs
    for name in os.listdir(local):
        if name.endswith(".nrrd"):
            x, y = read_volume(local / name), read_volume(remote / name)
            assert np.array_equal(x.array, y.array), name
            assert x.geometry_dict() == y.geometry_dict(), name
    assert (local / "rois.mrk.json").read_bytes() == (remote / "rois.mrk.json").read_bytes()
    assert (remote / "report.png").stat().st_size > 10_000


def _events(url: str, job_id: str, on_event=None, timeout: float = 300) -> list[dict]:
    """A job's events until the final one (read in a thread, so the wait is bounded)."""
    found: queue.Queue = queue.Queue()

    def read():
        try:
            with httpx.stream("GET", url + p.job_path(job_id, "events"), timeout=60) as response:
                for line in response.iter_lines():
                    if line.strip():
                        found.put(json.loads(line))
        except Exception as exc:   # handed to the test
            found.put(exc)
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    events, deadline = [], time.monotonic() + timeout
    while True:
        event = found.get(timeout=max(0.1, deadline - time.monotonic()))   # heartbeats do not extend it
        if event is None:
            return events
        if isinstance(event, Exception):
            raise event
        events.append(event)
        if on_event:
            on_event(event)


def _submit(url: str, study, rois: Path | None = None, headers=None, **fields) -> httpx.Response:
    with open(study["image"], "rb") as image:
        files = {p.IMAGE: ("image.nrrd", image, "application/octet-stream")}
        if rois is not None:
            files[p.ROIS] = ("rois.mrk.json", rois.read_bytes(), "application/json")
        return httpx.post(url + p.STAGE, files=files, data={p.DEVICE: "cpu", **fields}, headers=headers,
                          timeout=120)


def _stderr_lines(process) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read():
        for line in iter(process.stderr.readline, ""):
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue, prefix: str, timeout: float = 300) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, f"the client ended before printing '{prefix}':\n{''.join(seen)}"
        seen.append(line)
        if line.startswith(prefix):
            return seen


# ---------------------------------------------------------------------------------------------------------------
def test_health_and_models(server):
    health = httpx.get(server.url + p.HEALTH, timeout=10).json()
    assert health["status"] == "ok" and health["token_required"] is False
    assert health["max_upload_bytes"] == 1024 << 20 and health["queued"] == health["running"] == 0
    models = httpx.get(server.url + p.MODELS, timeout=10).json()
    assert models["default_model"] == "vdpf-small-phantom" and models["device"] == "cpu"
    by_id = {m["id"]: m for m in models["models"]}
    assert by_id["vdpf-small-phantom"]["loaded_on"] == ["cpu"]          # loaded at start-up, warm
    assert by_id["detector-phantom"]["kind"] == "detector" and by_id["detector-phantom"]["loaded_on"] == ["cpu"]
    assert len(by_id["vdpf-small-phantom"]["sha256"]) == 64


def test_stage_on_the_server_writes_what_local_staging_writes(server, study, tmp_path):
    local = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "local", "--device", "cpu")
    remote = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "remote", "--device", "cpu",
                     "--server", server.url)
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    _same_outputs(tmp_path / "local", tmp_path / "remote")
    # The same lines, with the client's own paths in them (the server's never leave it).
    assert _messages(remote.stderr) == [ln.replace("/local", "/remote") for ln in _messages(local.stderr)]
    assert any(ln.startswith("progress: stage ") for ln in remote.stderr.splitlines())
    # Existing outputs are not replaced without --overwrite, as locally.
    again = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "remote", "--server",
                    server.url)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr and len(_messages(again.stderr)) == 1
    assert wait_until(lambda: not any(_jobs_dir(server).iterdir()), 10)   # job folders gone once answered


def test_auto_roi_on_the_server(server, study, tmp_path):
    local = run_cli("stage", study["image"], "--auto-roi", "--out", tmp_path / "local", "--device", "cpu")
    remote = run_cli("stage", study["image"], "--auto-roi", "--out", tmp_path / "remote", "--server", server.url,
                     "--device", "cpu")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    _same_outputs(tmp_path / "local", tmp_path / "remote")
    result = json.loads((tmp_path / "remote" / "result.json").read_text())
    assert result["rois"] and all(r["detection_score"] is not None for r in result["rois"])


def test_a_dicom_series_is_sent_as_its_folder_and_answered_with_the_dicom_outputs(server, study, tmp_path):
    """A DICOM folder (or one file of the series) travels as a zip of the folder's files; the SEG and SR come
    back like locally, and the patient's identifiers are in them (as locally) but not in the server's log."""
    from test_dicom_outputs import write_mr_series

    series = write_mr_series(read_volume(study["image"]), tmp_path / "series", "ROE^RICHARD", "PID-777")
    local = run_cli("stage", series, "--roi", study["roi"], "--out", tmp_path / "local", "--device", "cpu")
    assert local.returncode == 0, local.stderr
    for name, target in (("folder", series), ("file", series / "im005.dcm")):
        remote = run_cli("stage", target, "--roi", study["roi"], "--out", tmp_path / name, "--server", server.url,
                         "--device", "cpu")
        assert remote.returncode == 0, remote.stderr
        assert sorted(os.listdir(tmp_path / name)) == sorted(os.listdir(tmp_path / "local"))
        a = json.loads((tmp_path / "local" / "result.json").read_text())
        b = json.loads((tmp_path / name / "result.json").read_text())
        a.pop("timings"), b.pop("timings")
        assert b["input"]["path"] == str(target)
        a["input"].pop("path"), b["input"].pop("path")
        assert a == b
        assert {"thrombus-seg.dcm", "stage-sr.dcm"} <= set(os.listdir(tmp_path / name))
    assert "ROE^RICHARD" not in server.log() and "PID-777" not in server.log() and "im005" not in server.log()


def test_bad_input_gets_the_cli_message_from_the_server(server, study, tmp_path, capsys):
    cases = bad_inputs(tmp_path)
    outside = tmp_path / "outside.mrk.json"
    truth = read_rois(study["roi"])[0]
    write_rois(outside, [BoxROI("far", truth.center_ras + 5000, truth.size_mm, truth.axes_ras)])
    runs = [(image, study["roi"]) for image, _ in cases.values()] + [(study["image"], outside)]
    for n, (image, roi) in enumerate(runs):
        args = ["stage", str(image), "--roi", str(roi), "--device", "cpu"]
        local = main(args + ["--out", str(tmp_path / f"l{n}")])
        local_err = capsys.readouterr().err
        remote = main(args + ["--out", str(tmp_path / f"r{n}"), "--server", server.url])
        remote_err = capsys.readouterr().err
        assert local == remote == 2, (image, local_err, remote_err)
        assert remote_err.replace(f"r{n}", f"l{n}") == local_err, image
    health = httpx.get(server.url + p.HEALTH, timeout=10).json()
    assert health["status"] == "ok" and not any(_jobs_dir(server).iterdir())   # refused uploads left nothing


def test_progress_is_streamed_and_the_answer_holds_no_server_path(server, study):
    submitted = _submit(server.url, study, study["roi"])
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["job"]
    events = _events(server.url, job)
    kinds = [e["event"] for e in events]
    assert kinds[:2] == [p.QUEUED, p.STARTED] and kinds[-1] == p.DONE, kinds
    progress = [e for e in events if e["event"] == p.PROGRESS]
    assert progress and progress[-1] == {"event": p.PROGRESS, "task": "stage", "done": 1, "total": 1}
    assert any(e["event"] == p.STATUS and e["message"].startswith("stage: ") for e in events)
    done = events[-1]
    assert "result.json" in done["outputs"] and done["result"]["input"]["path"] == p.INPUT
    assert (_jobs_dir(server) / job).is_dir()               # kept until its outputs are fetched
    answer = httpx.get(server.url + p.job_path(job, "outputs"), timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert sorted(archive.namelist()) == sorted(done["outputs"])
    work = str(server.folder / "work")
    texts = [json.dumps(events)] + [archive.read(n).decode() for n in archive.namelist() if n.endswith(".json")]
    assert not any(work in text for text in texts)          # no server path in what it sent
    assert wait_until(lambda: not (_jobs_dir(server) / job).exists(), 10)
    assert httpx.get(server.url + p.job_path(job), timeout=10).status_code == 404


def test_the_answer_is_streamed_before_the_overlays(server, study, tmp_path, capsys, monkeypatch):
    """The job streams its answer (result.json as written once the stage is known, overlays `pending`) as its
    own event before it ends; the `--server` client writes that result.json at once and prints the stage
    line then, while the overlay files come only with the outputs."""
    job = _submit(server.url, study, study["roi"]).json()["job"]
    events = _events(server.url, job)
    kinds = [e["event"] for e in events]
    assert kinds.count(p.ANSWER) == 1 and kinds.index(p.ANSWER) < kinds.index(p.DONE), kinds
    answer, final = events[kinds.index(p.ANSWER)]["result"], events[-1]["result"]
    assert answer["pending"] == [*OVERLAY_FILES.values(), "report.png"] and answer["outputs"] == {"rois": ROIS_FILE}
    assert answer["input"]["path"] == p.INPUT and "pending" not in final
    same = ("timings", "outputs", "pending")
    assert {k: v for k, v in answer.items() if k not in same} == {k: v for k, v in final.items() if k not in same}
    assert httpx.delete(server.url + p.job_path(job), timeout=10).status_code == 200

    # The --server client (in this process): result.json (overlays pending) and the ROIs are written, and
    # the stage line printed, when the answer arrives; the overlay files come only afterwards, with the outputs.
    from DVTStagingLib.service.client import Remote

    out, seen = tmp_path / "out", {}
    fetch = Remote.fetch

    def fetch_after_the_answer(self, *args, **kwargs):
        seen["names"] = sorted(os.listdir(out))
        seen["result"] = json.loads((out / "result.json").read_text(encoding="utf-8"))
        seen["lines"] = capsys.readouterr().err.splitlines()
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(Remote, "fetch", fetch_after_the_answer)
    assert main(["stage", str(study["image"]), "--roi", str(study["roi"]), "--out", str(out), "--server",
                 server.url, "--device", "cpu"]) == 0
    assert seen["names"] == ["result.json", ROIS_FILE]
    early = seen["result"]
    assert early["pending"] == answer["pending"] and early["input"]["path"] == str(study["image"])
    same = ("timings", "input")
    assert {k: v for k, v in early.items() if k not in same} == {k: v for k, v in answer.items() if k not in same}
    assert any(ln.startswith("stage: thrombus-1: ") for ln in seen["lines"])
    done = json.loads((out / "result.json").read_text())
    assert "pending" not in done and set(OVERLAY_FILES.values()) <= set(os.listdir(out))


def test_cancel_stops_queued_and_running_jobs(server, study):
    first = _submit(server.url, study, study["many"]).json()["job"]
    second = _submit(server.url, study, study["many"]).json()["job"]      # queued behind the first (one job thread)
    cancelled = httpx.delete(server.url + p.job_path(second), timeout=10).json()
    assert cancelled["state"] == p.CANCELLED
    assert [e["event"] for e in _events(server.url, second)] == [p.QUEUED, p.CANCELLED]

    def cancel_on_progress(event):
        if event["event"] == p.PROGRESS:
            httpx.delete(server.url + p.job_path(first), timeout=10)

    events = _events(server.url, first, cancel_on_progress, timeout=300)
    assert events[-1]["event"] == p.CANCELLED
    assert sum(e["event"] == p.PROGRESS for e in events) < 24              # stopped well before the end
    assert wait_until(lambda: not any(_jobs_dir(server).iterdir()), 10)
    assert httpx.get(server.url + p.HEALTH, timeout=10).json()["running"] == 0


def test_sigterm_to_the_client_cancels_the_remote_job(server, study, tmp_path):
    client = start_cli("stage", study["image"], "--roi", study["many"], "--out", tmp_path / "out", "--server",
                       server.url, "--device", "cpu")
    try:
        lines = _stderr_lines(client)
        _wait_for_line(lines, "progress: stage")
        client.send_signal(signal.SIGTERM)                  # what the panel's Cancel sends
        assert client.wait(timeout=20) == 130
        rest = []
        while (line := lines.get(timeout=10)) is not None:
            rest.append(line)
        assert rest[-1].strip() == "dvt-staging: cancelled"
    finally:
        client.kill()
    assert wait_until(lambda: httpx.get(server.url + p.HEALTH, timeout=10).json()["running"] == 0, 30)
    assert wait_until(lambda: not any(_jobs_dir(server).iterdir()), 10)
    assert not (tmp_path / "out" / "result.json").exists()


def test_the_token_is_required_and_a_wrong_one_refused(tmp_path, study):
    token = tmp_path / "token.txt"
    token.write_text("s3cret-" + "x" * 40 + "\n")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("s3cret-" + "y" * 40 + "\n")
    srv = Server(tmp_path / "server", "--token-file", token, "--work-dir", tmp_path / "work")
    try:
        assert httpx.get(srv.url + p.HEALTH, timeout=10).json()["token_required"] is True   # for load balancers
        for headers in ({}, {"Authorization": "Bearer " + "s3cret-" + "y" * 40}, {"Authorization": "s3cret"}):
            answer = httpx.get(srv.url + p.MODELS, headers=headers, timeout=10)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert "token" in answer.json()["error"]
        assert _submit(srv.url, study, study["roi"]).status_code == 401
        base = ["stage", study["image"], "--roi", study["roi"], "--server", srv.url]
        missing = run_cli(*base, "--out", tmp_path / "a")
        assert missing.returncode == 2 and _messages(missing.stderr) == [
            f"dvt-staging: error: the staging server at {srv.url} needs a token: pass --token-file FILE"]
        refused = run_cli(*base, "--out", tmp_path / "b", "--token-file", wrong)
        assert refused.returncode == 2 and _messages(refused.stderr) == [
            f"dvt-staging: error: the staging server at {srv.url} refused the token in {wrong}"]
        accepted = run_cli(*base, "--out", tmp_path / "c", "--token-file", token, "--device", "cpu")
        assert accepted.returncode == 0, accepted.stderr
        assert "s3cret" not in srv.log()
    finally:
        srv.stop()


def test_oversize_and_truncated_uploads_get_4xx_and_the_server_keeps_serving(tmp_path, study):
    srv = Server(tmp_path / "server", "--max-upload-mb", "1", "--work-dir", tmp_path / "work")
    jobs = tmp_path / "work" / "jobs"
    try:
        big = {p.IMAGE: ("image.nrrd", os.urandom(1536 * 1024), "application/octet-stream")}
        answer = httpx.post(srv.url + p.STAGE, files=big, data={p.AUTO_ROI: "true"}, timeout=60)
        assert answer.status_code == 413
        assert answer.json() == {"error": "the upload is larger than this server's limit of 1 MB"}
        client = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "out", "--server",
                         srv.url)
        assert client.returncode == 2 and len(_messages(client.stderr)) == 1
        assert "more than the upload limit of the staging server" in client.stderr
        # A multipart body cut short (its length announced truthfully): 400, the CLI-style JSON error.
        small = tmp_path / "small.nrrd"
        rng = np.random.default_rng(0)
        write_volume(Volume(rng.integers(0, 1000, (6, 20, 24)).astype(np.int16), [1, 1, 2], [0, 0, 0], np.eye(3)),
                     small)
        request = httpx.Request("POST", srv.url + p.STAGE, files={p.IMAGE: ("image.nrrd", small.read_bytes())},
                                data={p.AUTO_ROI: "true"})
        body = request.read()
        cut = body[: len(body) // 2]
        answer = httpx.post(srv.url + p.STAGE, content=cut, timeout=60,
                            headers={"Content-Type": request.headers["Content-Type"]})
        assert 400 <= answer.status_code < 500 and answer.json()["error"]
        # A client that goes away in the middle of its upload.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            head = (f"POST {p.STAGE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {request.headers['Content-Type']}"
                    f"\r\nContent-Length: {len(body)}\r\n\r\n")
            sock.sendall(head.encode() + body[:200])
        # The server still serves: a whole small study is accepted and staged (no thrombus in noise).
        ok = httpx.post(srv.url + p.STAGE, files={p.IMAGE: ("image.nrrd", small.read_bytes())},
                        data={p.AUTO_ROI: "true", p.DEVICE: "cpu"}, timeout=60)
        assert ok.status_code == 202, ok.text
        assert _events(srv.url, ok.json()["job"])[-1]["event"] == p.DONE
        assert httpx.get(srv.url + p.job_path(ok.json()["job"], "outputs"), timeout=30).status_code == 200
        assert wait_until(lambda: not any(jobs.iterdir()), 10)
        assert httpx.get(srv.url + p.HEALTH, timeout=10).json()["status"] == "ok"
    finally:
        srv.stop()


def test_killing_the_server_mid_request_fails_the_client_clearly_and_a_restarted_one_serves(tmp_path, study):
    first = Server(tmp_path / "first", "--work-dir", tmp_path / "work1")
    client = start_cli("stage", study["image"], "--roi", study["many"], "--out", tmp_path / "out", "--server",
                       first.url, "--device", "cpu")
    try:
        lines = _stderr_lines(client)
        _wait_for_line(lines, "progress: stage")
        first.kill()
        assert client.wait(timeout=60) == 3
        rest = []
        while (line := lines.get(timeout=10)) is not None:
            rest.append(line)
        errors = [ln for ln in rest if ln.startswith("dvt-staging:")]
        assert len(errors) == 1 and errors[0].startswith(
            f"dvt-staging: error: the connection to the staging server at {first.url} was lost"), rest
        assert "Traceback" not in "".join(rest)
    finally:
        client.kill()
        first.kill()
    second = Server(tmp_path / "second", "--work-dir", tmp_path / "work2")
    try:
        again = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "out", "--server",
                        second.url, "--device", "cpu")
        assert again.returncode == 0, again.stderr
        assert (tmp_path / "out" / "result.json").is_file()
    finally:
        second.stop()
    unreachable = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "x", "--server",
                          first.url)
    assert unreachable.returncode == 3 and _messages(unreachable.stderr) == [
        f"dvt-staging: error: cannot reach the staging server at {first.url} ([Errno 111] Connection refused)"]


def _tree(folder: Path) -> dict:
    return {str(q.relative_to(folder)): (q.stat().st_size, q.stat().st_mtime_ns) for q in folder.rglob("*")}


def test_nothing_is_written_outside_the_server_job_folder(tmp_path, study):
    system_tmp, cwd = tmp_path / "system-tmp", tmp_path / "cwd"
    system_tmp.mkdir(), cwd.mkdir()
    before = _tree(study["folder"])
    srv = Server(tmp_path / "server", env={"TMPDIR": str(system_tmp)}, cwd=cwd)
    try:
        work = [q for q in system_tmp.iterdir()]
        assert len(work) == 1 and work[0].name.startswith("dvt-serve-")
        client = run_cli("stage", study["image"], "--roi", study["roi"], "--out", tmp_path / "out", "--server",
                         srv.url, "--device", "cpu", env={"TMPDIR": str(tmp_path / "client-tmp")})
        assert client.returncode == 0, client.stderr
        assert list(system_tmp.iterdir()) == work                    # only the server's own folder
        assert wait_until(lambda: not any((work[0] / "jobs").iterdir()), 10)
        assert [q for q in work[0].rglob("*") if q.is_file()] == []  # no upload, spool or output left in it
        assert list(cwd.iterdir()) == []
        assert _tree(study["folder"]) == before
    finally:
        assert srv.stop() == 0
    assert list(system_tmp.iterdir()) == []                          # the work folder goes with the server


def test_the_client_starts_without_torch(server, study, tmp_path):
    code = ("import sys; from DVTStagingLib.cli import main; "
            f"rc = main(['stage', {str(study['image'])!r}, '--roi', {str(study['roi'])!r}, '--out', "
            f"{str(tmp_path / 'out')!r}, '--server', {server.url!r}]); print(rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=cli_env())
    assert proc.stdout.split() == ["0", "False"], proc.stderr

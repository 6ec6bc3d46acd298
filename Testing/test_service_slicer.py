"""The staging service from the Slicer side, on the strict fakes over real MRML: the panel's "Compute on" choice
kept in Slicer's settings (never in the scene), the Logic staging on a configured server, and the warm local
worker (one per session, models kept loaded, restarted after a crash, stopped with Slicer).  Loopback only;
every wait is bounded (docs/service.md)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import slicer
from DVTStagingLib.slicer import compute
from DVTStagingLib.slicer.jobs import ServerTarget
from DVTStagingLib.slicer.worker import LocalWorker, shared_worker
from service_helpers import Server, wait_until
from slicer_fakes.fixtures import *  # noqa: F401,F403  (fixtures: slicer_session, panel, shared_cache)

pytestmark = pytest.mark.slow


def _items(combo, data=False):
    return [combo.itemData(i) if data else combo.itemText(i) for i in range(combo.count)]


def test_compute_on_is_a_slicer_setting_not_part_of_the_scene(panel, slicer_session, tmp_path):
    ui, user, settings = panel.ui, slicer_session.user, slicer_session.settings
    assert _items(ui.computeOnComboBox) == ["this computer", "server"]
    assert _items(ui.computeOnComboBox, data=True) == [compute.LOCAL, compute.SERVER]
    assert ui.computeOnComboBox.currentData == compute.LOCAL
    assert not ui.serverUrlLineEdit.visible and not ui.serverTokenPathLineEdit.visible   # only for a server
    assert panel.logic.jobs.server() is None                                               # this computer
    user.choose(ui.computeOnComboBox, "server")
    assert ui.serverUrlLineEdit.visible and ui.serverTokenPathLineEdit.visible
    assert settings[compute.COMPUTE_ON_KEY] == compute.SERVER
    with pytest.raises(ValueError, match="Set the staging server's address"):
        panel.logic.jobs.server()
    token = tmp_path / "token.txt"
    user.type_text(ui.serverUrlLineEdit, "https://staging.example.org:8443")
    user.type_text(ui.serverTokenPathLineEdit, str(token))
    assert settings[compute.SERVER_URL_KEY] == "https://staging.example.org:8443"
    assert settings[compute.TOKEN_FILE_KEY] == str(token)
    assert panel.logic.jobs.server() == ServerTarget("https://staging.example.org:8443", str(token))
    # Nothing of it is in the scene (a study saved as .mrb carries no server address or token path).
    node = panel._parameterNode.parameterNode
    assert not any("server" in name.lower() or "compute" in name.lower() for name in node.GetParameterNames())
    slicer.mrmlScene.SetSaveToXMLString(1)
    slicer.mrmlScene.Commit()
    assert "staging.example.org" not in slicer.mrmlScene.GetSceneXMLString()
    # A new panel (next Slicer session, same user settings) shows the choice again.
    slicer_session.unload_module()
    widget = slicer_session.show_module()
    assert widget.ui.computeOnComboBox.currentData == compute.SERVER
    assert widget.ui.serverUrlLineEdit.text == "https://staging.example.org:8443"
    assert widget.ui.serverTokenPathLineEdit.currentPath == str(token)
    user.choose(widget.ui.computeOnComboBox, "this computer")
    assert settings[compute.COMPUTE_ON_KEY] == compute.LOCAL and not widget.ui.serverUrlLineEdit.visible
    assert widget.logic.jobs.server() is None


def test_staging_with_an_incomplete_server_setup_says_what_to_set(panel, slicer_session):
    """Shown in an error dialog by tryWithErrorDisplay, which re-raises (Slicer's behaviour: the slot's
    traceback reaches the Python console); nothing runs."""
    ui, logic = panel.ui, panel.logic
    volume = logic.loadSampleStudy()
    assert panel._parameterNode.inputVolume is volume
    slicer_session.user.choose(ui.computeOnComboBox, "server")
    slicer_session.user.click(ui.stageButton)
    assert not logic.isRunning() and ui.stageButton.text == "Stage"
    shown = slicer_session.errors_shown()
    assert len(shown) == 1 and "Staging failed to start." in shown[0] and "staging server's address" in shown[0]
    assert len(slicer_session.console_errors) == 1 and "ValueError" in slicer_session.console_errors[0]
    slicer_session.console_errors.clear()


@pytest.fixture
def real_logic(slicer_app, slicer_session, tmp_path):
    """The Logic as Slicer makes it (warm worker, settings-backed server choice), running the real CLI."""
    from slicer_fakes import import_module_file

    logic = import_module_file().DVTStagingLogic()
    logic.jobs.job_parent_folder = str(tmp_path)
    yield logic
    logic.cleanup()


def test_the_logic_stages_on_the_configured_server_with_its_token(real_logic, slicer_session, tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("t" * 40 + "\n")
    srv = Server(tmp_path / "server", "--token-file", token, "--work-dir", tmp_path / "work")
    try:
        compute.write_settings(compute.ComputeSettings(compute.SERVER, srv.url, str(token)))
        volume = real_logic.loadSampleStudy()
        progress = []
        results = real_logic.stage(volume, device="cpu", onProgress=progress.append, timeout=600)
        assert results.tableNode.GetNumberOfRows() == len(real_logic.roiNodes(volume))
        assert progress and progress[-1].task == "stage" and progress[-1].fraction == 1.0
        assert real_logic.jobs.worker.process is None            # the server ran it: no local worker started
    finally:
        srv.stop()


def test_the_local_worker_stays_warm_restarts_after_a_crash_and_stops_with_slicer(real_logic, slicer_session):
    compute.write_settings(compute.ComputeSettings(compute.LOCAL))
    worker = real_logic.jobs.worker
    assert worker is shared_worker()                              # one worker for every Logic of the session
    volume = real_logic.loadSampleStudy()
    first = real_logic.stage(volume, device="cpu", timeout=600)
    pid = worker.process.pid
    assert worker.starts == 1 and worker.healthy()
    assert stat.S_IMODE(worker.folder.stat().st_mode) == 0o700 and stat.S_IMODE(worker.token_file.stat().st_mode) == 0o600
    second = real_logic.stage(volume, device="cpu", timeout=600)
    assert worker.process.pid == pid and worker.starts == 1
    timings = json.loads((real_logic.jobs._folders[-1] / "out" / "result.json").read_text())["timings"]
    assert timings["load_model"] < 0.05                           # the model was already loaded
    assert second.result.stage == first.result.stage and second.result.probabilities == first.result.probabilities
    # The answer first, through the worker, with ROIs it detects: the nodes come before the overlays.
    calls = []

    def on_answer(nodes):               # what the answer brought, before the end completes the same nodes
        calls.append((nodes, nodes.result.pending, dict(nodes.attentionNodes)))

    real_logic.startStaging(volume, autoDetect=True, device="cpu", onAnswer=on_answer,
                            onFinished=lambda nodes, error: calls.append((nodes, error)))
    assert wait_until(lambda: not real_logic.poll(), 600)
    (answer, pending, overlays), (final, error) = calls
    assert error is None and final is answer and answer.roiNodes and pending and overlays == {}
    assert final.attentionNodes and final.result.pending == []
    for node in answer.roiNodes:                                  # the study's own ROI again, alone
        real_logic.removeROI(volume, node)
    os.killpg(pid, signal.SIGKILL)                                # the worker crashes
    assert wait_until(lambda: not worker.running(), 10)
    third = real_logic.stage(volume, device="cpu", timeout=600)   # the next click starts it again
    assert worker.starts == 2 and worker.process.pid != pid
    assert third.result.probabilities == first.result.probabilities
    folder, process = worker.folder, worker.process
    assert (folder / "work" / "jobs").is_dir() and not any((folder / "work" / "jobs").iterdir())
    slicer.app._fake_emit("aboutToQuit()")                        # Slicer quits: the worker goes too
    assert worker.process is None and not folder.exists() and not process.running


def test_a_worker_that_dies_while_starting_fails_the_job_with_its_reason(real_logic, slicer_session):
    compute.write_settings(compute.ComputeSettings(compute.LOCAL))
    volume = real_logic.loadSampleStudy()
    outcome = {}
    job = real_logic.startStaging(volume, device="cpu", onFinished=lambda nodes, error: outcome.update(error=error))
    worker = job.worker
    os.killpg(worker.process.pid, signal.SIGKILL)
    assert wait_until(lambda: not real_logic.poll(), 60)
    assert outcome["error"].startswith("the local staging worker stopped:")


def test_the_worker_exits_when_its_parent_has_gone(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    worker = LocalWorker(parent_pid=parent.pid)
    try:
        worker.start()
        assert wait_until(worker.healthy, 180, step=0.2), worker.process.stderr_tail
        parent.kill()
        parent.wait(timeout=10)
        assert wait_until(lambda: not worker.running(), 30)
        assert worker.error() is None or "stopped" in worker.error()
    finally:
        parent.kill()
        worker.stop()
    assert worker.folder is None

"""The staging service's parts on their own: the wire contract's path placeholders, the token and bind rules,
upload names and archives, the job threads' set-up, and batching of concurrent model calls (docs/service.md)."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import zipfile

import pytest
import torch
from DVTStagingLib.cli import main
from DVTStagingLib.core.errors import UserError
from DVTStagingLib.service import protocol as p
from DVTStagingLib.service.auth import check_bind, is_loopback, read_token, token_matches, write_new_token
from DVTStagingLib.service.batching import ModelExecutor, split_output
from DVTStagingLib.service.jobs import JobStore
from DVTStagingLib.service.uploads import save_file, save_series, volume_suffix


def test_placeholders_hide_server_paths_and_the_client_fills_in_its_own():
    server = {"/srv/jobs/ab/input/image.nrrd": p.INPUT, "/srv/jobs/ab/out": p.OUT, "/srv/jobs/ab": "<job>"}
    text = "stage: wrote result.json to /srv/jobs/ab/out; /srv/jobs/ab/input/image.nrrd is fine"
    scrubbed = p.scrub(text, server)
    assert "/srv" not in scrubbed and scrubbed == "stage: wrote result.json to <out>; <input> is fine"
    assert p.fill(scrubbed, {p.INPUT: "study.nrrd", p.OUT: "results"}) == \
        "stage: wrote result.json to results; study.nrrd is fine"


def test_tokens_are_read_with_one_line_errors_and_compared_exactly(tmp_path):
    with pytest.raises(UserError, match="token file .* does not exist"):
        read_token(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        read_token(tmp_path / "empty.txt")
    (tmp_path / "short.txt").write_text("abc\n")
    with pytest.raises(UserError, match="shorter than 16"):
        read_token(tmp_path / "short.txt")
    token = write_new_token(tmp_path / "token.txt")
    assert read_token(tmp_path / "token.txt") == token and len(token) >= 32
    if os.name == "posix":
        assert (tmp_path / "token.txt").stat().st_mode & 0o777 == 0o600
    assert token_matches(token, f"Bearer {token}") and token_matches(token, f"bearer {token} ")
    assert not token_matches(token, f"Bearer {token}x") and not token_matches(token, token)
    assert not token_matches(token, None) and not token_matches(token, "Basic abc")
    assert token_matches(None, None)       # a loopback server without a token


def test_only_loopback_addresses_may_listen_without_a_token(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("::")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a" * 32)
    with pytest.raises(UserError, match="without a token"):
        check_bind("0.0.0.0", None)
    # The command refuses at once, in one line, before it binds anything or loads a model library.
    code = main(["serve", "--host", "0.0.0.0", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("dvt-staging: error: refusing to listen on 0.0.0.0 without a token")


def test_upload_names_keep_only_the_format_suffix():
    assert volume_suffix("Doe^John 1970.nii.gz") == ".nii.gz"
    assert volume_suffix("/home/x/study.NRRD") == ".nrrd"
    assert volume_suffix("case.v1.mha") == ".mha"
    assert volume_suffix("image") == "" and volume_suffix(None) == "" and volume_suffix("a.b c") == ""


def test_uploads_over_the_limit_and_unsafe_archives_are_refused(tmp_path):
    with pytest.raises(UserError, match="larger than this server's limit of 1 MB"):
        save_file(io.BytesIO(b"x" * ((1 << 20) + 1)), tmp_path / "big", 1 << 20)

    def archive(members):
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, content in members:
                zf.writestr(name, content)
        data.seek(0)
        return data

    for n, (members, message) in enumerate([
            ([("../escape.dcm", b"x")], "without sub-folders"),
            ([("sub/a.dcm", b"x")], "without sub-folders"),
            ([("a.dcm", b"x" * 2000)], "unpacks to more than"),
    ]):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        with pytest.raises(UserError, match=message):
            save_series(archive(members), folder, 1000)
    folder = tmp_path / "bad"
    folder.mkdir()
    with pytest.raises(UserError, match="not a zip archive"):
        save_series(io.BytesIO(b"not a zip"), folder, 1000)
    folder = tmp_path / "good"
    folder.mkdir()
    path, series = save_series(archive([("a.dcm", b"1"), ("b.dcm", b"2")]), folder, 1000, "b.dcm")
    assert path == series / "b.dcm" and sorted(os.listdir(series)) == ["a.dcm", "b.dcm"]
    assert not (folder / "series.zip").exists()
    folder = tmp_path / "unknown-file"
    folder.mkdir()
    with pytest.raises(UserError, match="series_file names no file"):
        save_series(archive([("a.dcm", b"1")]), folder, 1000, "../a.dcm")


@dataclasses.dataclass
class _Maps:
    first: torch.Tensor
    second: torch.Tensor


class _Net(torch.nn.Module):
    """Logits and per-row maps (a dataclass), like VDPF with need_attention; records the batch sizes it ran."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(6, 3)
        self.batches = []
        self.threads = set()

    def forward(self, x, y, need_maps: bool = False):
        self.batches.append(x.shape[0])
        self.threads.add(threading.current_thread().name)
        logits = self.linear(x * y)
        return (logits, _Maps(x[:, :2] * 2, y[:, :1])) if need_maps else logits

    def embed(self, x, y):
        return self.linear(x) + y.sum(dim=1, keepdim=True)


def test_the_setup_runs_in_the_thread_that_then_runs_the_jobs(tmp_path):
    seen = []
    ran = threading.Event()

    def run(job):
        seen.append(("job", threading.current_thread().name))
        ran.set()

    store = JobStore(tmp_path / "jobs", run, setup=lambda: seen.append(("setup", threading.current_thread().name)))
    try:
        store.wait_ready()
        store.enqueue(store.create("stage"))
        assert ran.wait(10)
    finally:
        store.stop()
    assert seen == [("setup", "dvt-staging-job-0"), ("job", "dvt-staging-job-0")]


def test_a_failing_setup_is_raised_where_the_server_waits_for_it(tmp_path):
    def setup():
        raise UserError("weights do not fit")

    store = JobStore(tmp_path / "jobs", lambda job: None, workers=2, setup=setup)
    try:
        with pytest.raises(UserError, match="weights do not fit"):
            store.wait_ready()
    finally:
        store.stop()


def test_split_output_hands_each_caller_its_rows():
    out = (torch.arange(10).reshape(5, 2), _Maps(torch.arange(5), torch.zeros(5, 1)), "shared", None)
    first, second = split_output(out, [2, 3])
    assert first[0].tolist() == [[0, 1], [2, 3]] and second[1].first.tolist() == [2, 3, 4]
    assert first[2] == second[2] == "shared" and first[3] is None
    assert split_output({"a": torch.ones(5)}, [4, 1])[1]["a"].shape == (1,)


def test_concurrent_calls_are_batched_in_one_thread_with_the_same_results():
    net = _Net().eval()
    executor = ModelExecutor()
    batched = executor.wrap(net)
    inputs = [(torch.randn(n, 6), torch.randn(n, 6)) for n in (3, 5, 2, 7, 4, 1)]
    with torch.inference_mode():
        expected = [net(x, y, need_maps=True) for x, y in inputs]
        expected_embed = [net.embed(x, y) for x, y in inputs]
    net.batches.clear()
    net.threads.clear()
    results, embeds, errors = [None] * len(inputs), [None] * len(inputs), []
    barrier = threading.Barrier(len(inputs), timeout=10)

    def call(i):
        try:
            barrier.wait()
            with torch.inference_mode():
                results[i] = batched(*inputs[i], need_maps=True)
                embeds[i] = batched.embed(*inputs[i])
        except Exception as exc:   # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    executor.stop()
    assert not errors and all(not t.is_alive() for t in threads)
    for (logits, maps), (want_logits, want_maps) in zip(results, expected):
        assert torch.allclose(logits, want_logits, atol=1e-6)
        assert torch.equal(maps.first, want_maps.first) and torch.equal(maps.second, want_maps.second)
    for got, want in zip(embeds, expected_embed):
        assert torch.allclose(got, want, atol=1e-6)
    assert net.threads == {"dvt-staging-model"}          # every batch ran in the one model thread
    assert sum(net.batches) == sum(len(x) for x, _ in inputs)
    assert len(net.batches) < len(inputs), net.batches   # concurrent callers shared batches
    assert executor.calls == 2 * len(inputs) and executor.batches < executor.calls


def test_batching_passes_through_with_grad_and_reports_errors_to_each_caller():
    net = _Net()
    executor = ModelExecutor()
    batched = executor.wrap(net)
    x, y = torch.randn(2, 6), torch.randn(2, 6)
    out = batched(x, y)                                  # grad enabled: straight through, in this thread
    out.sum().backward()
    assert net.linear.weight.grad is not None and threading.current_thread().name in net.threads
    assert batched.linear is net.linear and batched.training       # attributes are the module's
    with torch.inference_mode(), pytest.raises(RuntimeError):
        batched(torch.randn(2, 5), torch.randn(2, 5))    # wrong width: the caller gets the model's error
    with torch.no_grad():
        assert torch.allclose(batched(x, y), net(x, y))  # no_grad (not inference mode) is batched too
    executor.stop()

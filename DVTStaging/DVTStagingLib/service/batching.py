"""Concurrent model calls merged into one batch, run by one thread.

Jobs of the service run in several threads (on a GPU); each calls its model as it always does (the
Stager's batches of slices, the detector's batches of planes).  `BatchedModule` stands in for the model:
a call made under `torch.inference_mode()`/`no_grad()` is handed to the `ModelExecutor` thread, which
takes every call waiting at that moment, concatenates those that fit together (same module, keyword
arguments, trailing shapes, dtypes, device and autocast state) along the batch dimension, runs them as
one batch under the caller's autocast, and splits the outputs (tensors, tuples, dataclasses, dicts)
back to their callers.  No timer holds a call back: what arrives while the model runs is batched next.
With grad enabled (training) the call goes straight to the module.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time

import torch

MAX_ROWS = 256   # largest merged batch (rows along dim 0)


class _Call:
    __slots__ = ("target", "function", "args", "kwargs", "autocast", "inference", "alone", "done", "result", "error")

    def __init__(self, target, function, args, kwargs, autocast, inference):
        self.target, self.function, self.args, self.kwargs = target, function, args, kwargs
        self.autocast, self.inference = autocast, inference
        self.alone = not _batchable(args, kwargs)     # run in the executor too, but never merged
        self.done = threading.Event()
        self.result = self.error = None

    @property
    def rows(self) -> int:
        return 0 if self.alone else int(self.args[0].shape[0])

    def key(self):
        if self.alone:
            return ("alone", id(self))
        tensors = tuple((tuple(a.shape[1:]), a.dtype, a.device) for a in self.args)
        return (self.target, tuple(sorted(self.kwargs.items())), tensors, self.autocast, self.inference)


def _batchable(args, kwargs) -> bool:
    if not args or not all(isinstance(a, torch.Tensor) and a.dim() > 0 for a in args):
        return False
    rows = args[0].shape[0]
    try:
        hash(tuple(sorted(kwargs.items())))
    except TypeError:
        return False
    return all(a.shape[0] == rows for a in args)


def split_output(out, sizes: list[int]) -> list:
    """One part of a batched output per caller (rows `sizes` along dim 0); non-batch values are shared."""
    total = sum(sizes)
    if isinstance(out, torch.Tensor):
        return list(torch.split(out, sizes)) if out.dim() > 0 and out.shape[0] == total else [out] * len(sizes)
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        parts = [split_output(v, sizes) for v in out]
        return [type(out)(*values) for values in zip(*parts)]
    if isinstance(out, (tuple, list)):
        parts = [split_output(v, sizes) for v in out]
        return [type(out)(values) for values in zip(*parts)] if parts else [type(out)() for _ in sizes]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        names = [f.name for f in dataclasses.fields(out)]
        parts = {n: split_output(getattr(out, n), sizes) for n in names}
        return [dataclasses.replace(out, **{n: parts[n][i] for n in names}) for i in range(len(sizes))]
    if isinstance(out, dict):
        parts = {k: split_output(v, sizes) for k, v in out.items()}
        return [{k: parts[k][i] for k in out} for i in range(len(sizes))]
    return [out] * len(sizes)


class ModelExecutor:
    """The one thread that runs the models of the service; `wrap(module)` gives the stand-in to call."""

    def __init__(self, max_rows: int = MAX_ROWS):
        self.max_rows = max_rows
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="dvt-staging-model", daemon=True)
        self._thread.start()
        self.batches = 0          # statistics (GET /v1/health, the benchmark): batches run, calls in them,
        self.calls = 0            # rows of the largest call kind (slice pairs), seconds spent running them
        self.rows: dict = {}
        self.busy_s = 0.0

    def wrap(self, module) -> "BatchedModule":
        """The stand-in to use in place of `module`."""
        return BatchedModule(module, self)

    @property
    def in_executor(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, call: _Call):
        self._calls.put(call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def stop(self) -> None:
        self._calls.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            pending = [first]
            while True:            # everything that is already waiting
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                if call is None:
                    self._calls.put(None)
                    break
                pending.append(call)
            groups: dict = {}
            for call in pending:
                groups.setdefault(call.key(), []).append(call)
            for group in groups.values():
                chunk, rows = [], 0
                for call in group:
                    if chunk and rows + call.rows > self.max_rows:
                        self._run(chunk)
                        chunk, rows = [], 0
                    chunk.append(call)
                    rows += call.rows
                self._run(chunk)

    def stats(self) -> dict:
        return {"batches": self.batches, "calls": self.calls, "busy_s": round(self.busy_s, 4), "rows": dict(self.rows)}

    def _run(self, calls: list[_Call]) -> None:
        first = calls[0]
        device_type, enabled, dtype = first.autocast
        started = time.perf_counter()
        try:
            if len(calls) == 1:   # alone, or nothing to merge with: the caller's own arguments
                args = first.args
            else:
                args = tuple(torch.cat([c.args[i] for c in calls]) for i in range(len(first.args)))
            mode = torch.inference_mode() if first.inference else torch.no_grad()
            with mode, torch.autocast(device_type, dtype=dtype, enabled=enabled):
                out = first.function(*args, **first.kwargs)
            parts = [out] if len(calls) == 1 else split_output(out, [c.rows for c in calls])
            for call, part in zip(calls, parts):
                call.result = part
            if device_type == "cuda":
                torch.cuda.synchronize()      # the busy time is the device's, not the launch's
        except BaseException as exc:   # every caller of the batch gets the error
            for call in calls:
                call.error = exc
        self.busy_s += time.perf_counter() - started
        self.batches += 1
        self.calls += len(calls)
        label = first.target[2]
        self.rows[label] = self.rows.get(label, 0) + sum(c.rows for c in calls)
        for call in calls:
            call.done.set()


class BatchedModule:
    """Stands in for a module: calls of it, and of its methods (`embed`, `head`, ...), whose first argument is
    a tensor go through the executor (see the module docstring); every other attribute is the module's."""

    def __init__(self, module, executor: ModelExecutor):
        self.__dict__["module"] = module
        self.__dict__["executor"] = executor

    def __getattr__(self, name):
        module = self.__dict__["module"]
        value = getattr(module, name)
        if not name.startswith("_") and callable(value) and getattr(value, "__self__", None) is module:
            target = (id(module), name, f"{type(module).__name__}.{name}")
            return lambda *args, **kwargs: self._dispatch(target, value, args, kwargs)
        return value

    def __call__(self, *args, **kwargs):
        module = self.__dict__["module"]
        return self._dispatch((id(module), "__call__", type(module).__name__), module, args, kwargs)

    def _dispatch(self, target, function, args, kwargs):
        executor = self.__dict__["executor"]
        if (torch.is_grad_enabled() or executor.in_executor or not args
                or not isinstance(args[0], torch.Tensor)):
            return function(*args, **kwargs)      # training, evidence gradients, or not a batch: as it is
        device_type = args[0].device.type
        autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        return executor.submit(_Call(target, function, args, kwargs, autocast, torch.is_inference_mode_enabled()))

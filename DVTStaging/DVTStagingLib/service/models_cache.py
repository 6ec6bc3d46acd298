"""The models a server keeps loaded: one Stager per (staging model, device), one Detector per (detector, device).

A request names a model or a detector by catalogue id only (never a path: a client must not make the server
read its files); the server's own `--model` and `--detector` may be ids or model cards.  Models load once
(the default ones at start-up) and stay warm; the least recently used extra staging model (and extra
detector) is dropped past `max_models`.
With a `ModelExecutor`, every network runs in its one thread and concurrent calls are batched together.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict

from ..core.errors import UserError
from ..models.catalog import ModelEntry, list_models, resolve, verify_weights
from ..models.devices import DEVICES

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelCache:
    def __init__(self, model=None, device: str = "auto", executor=None, max_models: int = 2, detector=None):
        self.default = resolve(model, "staging")
        verify_weights(self.default)
        # The default detector: the one named (checked now), else the catalogue's default once it is found intact.
        self.default_detector: ModelEntry | None = None
        if detector is not None:
            self.default_detector = resolve(detector, "detector")
            verify_weights(self.default_detector)
        self.device_choice = device
        self.executor = executor
        self.max_models = max(1, max_models)
        self._stagers: OrderedDict = OrderedDict()
        self._detectors: OrderedDict = OrderedDict()
        self._has_detector: bool | None = None if detector is None else True
        self._lock = threading.Lock()

    # -- what a request may ask for (torch-free) -------------------------------------------------------
    def entry(self, requested: str | None) -> ModelEntry:
        """The staging model a request names: '' or None for the server's default, else a catalogue id."""
        if not requested or requested == self.default.id:
            return self.default
        known = {e.id: e for e in list_models("staging")}
        if not _ID.match(requested) or requested.endswith(".json") or requested not in known:
            names = ", ".join(sorted({self.default.id, *known})) or "none"
            raise UserError(f"no model '{requested}' on this server (available staging models: {names})")
        return known[requested]

    def detector_entry(self, requested: str | None) -> ModelEntry | None:
        """The detector a request names: '' or None for the server's default (None when it has none), else a
        catalogue id."""
        if not requested:
            return self.default_detector if self.has_detector() else None
        if self.has_detector() and requested == self.default_detector.id:
            return self.default_detector
        known = {e.id: e for e in list_models("detector")}
        if not _ID.match(requested) or requested.endswith(".json") or requested not in known:
            default = {self.default_detector.id} if self.has_detector() else set()
            names = ", ".join(sorted(default | set(known))) or "none"
            raise UserError(f"no detector '{requested}' on this server (available detectors: {names})")
        return known[requested]

    def device(self, requested: str | None) -> str:
        """The device a request asks for: auto (or nothing) means the server's own choice."""
        requested = requested or "auto"
        if requested not in DEVICES:
            raise UserError(f"unknown device '{requested}' (use {', '.join(DEVICES)})")
        choice = self.device_choice if requested == "auto" else requested
        from ..models.devices import resolve_device

        resolve_device(choice)        # cuda on a server without a GPU: the CLI's message, before the job is queued
        return choice

    # -- loaded models ---------------------------------------------------------------------------------
    def stager(self, entry: ModelEntry, device: str):
        from ..models.devices import resolve_device
        from ..staging.inference import Stager

        torch_device = resolve_device(device)
        key = (str(entry.card_path), entry.card["sha256"], str(torch_device))
        with self._lock:
            if key in self._stagers:
                self._stagers.move_to_end(key)
                return self._stagers[key]
            stager = Stager(entry, torch_device)
            if self.executor is not None:
                stager.model = self.executor.wrap(stager.model)
                stager.keep_graph_bytes = 0     # the executor batches gradient-free calls only
            self._stagers[key] = stager
            default_key = (str(self.default.card_path), self.default.card["sha256"])
            while len(self._stagers) > self.max_models:
                oldest = next((k for k in self._stagers if k[:2] != default_key), None)
                if oldest is None:
                    break
                self._stagers.pop(oldest)
            return stager

    def detector(self, entry: ModelEntry, device: str):
        from ..detection.detector import load_detector
        from ..models.devices import resolve_device

        torch_device = resolve_device(device)
        key = (str(entry.card_path), entry.card["sha256"], str(torch_device))
        with self._lock:
            if key in self._detectors:
                self._detectors.move_to_end(key)
                return self._detectors[key]
            detector = load_detector(str(entry.card_path), torch_device)
            if self.executor is not None:
                detector = dataclasses.replace(detector, network=self.executor.wrap(detector.network))
            self._detectors[key] = detector
            default = self.default_detector
            default_key = (str(default.card_path), default.card["sha256"]) if default is not None else None
            while len(self._detectors) > self.max_models:
                oldest = next((k for k in self._detectors if k[:2] != default_key), None)
                if oldest is None:
                    break
                self._detectors.pop(oldest)
            return detector

    def has_detector(self) -> bool:
        """Whether the server has a default detector with intact weights (the catalogue's is checked once)."""
        if self._has_detector is None:
            try:
                entry = resolve(None, "detector")
                verify_weights(entry)
                self.default_detector, self._has_detector = entry, True
            except UserError:
                self._has_detector = False
        return self._has_detector

    def warm(self) -> None:
        """Load the default staging model and the default detector now, not on the first request."""
        self.stager(self.default, self.device_choice).warm_up()
        if self.has_detector():
            self.detector(self.default_detector, self.device_choice)

    def describe(self) -> dict:
        """GET /v1/models: the catalogue as this server offers it, and what is loaded where."""
        detector = self.default_detector if self.has_detector() else None
        with self._lock:
            loaded = [(k[0], k[2]) for k in (*self._stagers, *self._detectors)]
        entries = {e.id: e for e in list_models()}
        entries.setdefault(self.default.id, self.default)
        if detector is not None:
            entries.setdefault(detector.id, detector)
        defaults = {("staging", self.default.id), ("detector", detector.id if detector else None)}
        models = []
        for entry in entries.values():
            card = entry.card
            models.append({
                "id": entry.id, "kind": entry.kind, "source": entry.source, "version": str(card.get("version", "")),
                "config": card.get("config", {}).get("name", ""), "sha256": card.get("sha256", ""),
                "default": (entry.kind, entry.id) in defaults,
                "loaded_on": [dev for path, dev in loaded if path == str(entry.card_path)],
            })
        return {"default_model": self.default.id, "default_detector": detector.id if detector else None,
                "device": self.device_choice, "models": models}

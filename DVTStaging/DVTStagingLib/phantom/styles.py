"""Phantom drawing styles: independent renderers of the same clinical cues (docs/phantom.md).

A style is a function `make_study(seed, stages) -> PhantomStudy`.  `analytic` is the style the bundled
models are trained on.  Every style in HELD_OUT_STYLES is an "external site": other shape, texture and
scanner code with the same cues.  The bundled models never train on it: it scores them zero-shot, and it is
the "site" of the adaptation study (`adapt` fine-tunes on some of its studies and is scored on others,
docs/results/adapt-fields.md), as a hospital adapts the models to its own scanners.
"""

from __future__ import annotations

from importlib import import_module

from ..core.errors import UserError

TRAINING_STYLE = "analytic"
# name -> module that defines make_study(seed, stages); imported only when the style is drawn.
_MODULES = {
    "analytic": ".study",
    "fields": ".fields.study",
}
HELD_OUT_STYLES = frozenset({"fields"})


def style_names() -> list[str]:
    return sorted(_MODULES)


def make_study(seed: int, stages: list[str], style: str = TRAINING_STYLE):
    """One study of `style` with a thrombus of each given stage."""
    if style not in _MODULES:
        raise UserError(f"unknown phantom style {style!r}; choose one of {', '.join(style_names())}")
    return import_module(_MODULES[style], __package__).make_study(seed, stages)


def held_out_style_of(dataset) -> str | None:
    """The held-out style a dataset (io.dataset.Dataset) was drawn in, by its source or any case; else None."""
    styles = {(dataset.meta.get("source") or {}).get("style")} | {c.extra.get("style") for c in dataset.cases}
    held = sorted(s for s in styles if s in HELD_OUT_STYLES)
    return held[0] if held else None


def refuse_held_out_style(dataset, what: str) -> None:
    """A model trained from scratch on an external site's style would make that site's scores meaningless.

    Fine-tuning (`--init`, `adapt`) is what a site does with its own studies, so it may use them; training a
    model from scratch (the way the bundled models are made) may not."""
    style = held_out_style_of(dataset)
    if style is not None:
        raise UserError(f"{dataset.root}: drawn in the held-out phantom style '{style}', an external site kept for "
                        f"scoring and site adaptation only; {what} does not train a model from scratch on it "
                        f"(fine-tune one with --init, or run adapt)")

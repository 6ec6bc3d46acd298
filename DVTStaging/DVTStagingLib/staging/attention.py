"""Cross-attention token maps back into the study's voxel grid (the heat-map overlay)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..io.volume import Volume
from .slices import StudyView

# Public map name (file names, panel) -> the key the model gives its attention weights under.
MAP_KEYS = {"local-to-global": "local_to_global", "global-to-local": "global_to_local"}


def token_maps_in_view(study: StudyView, result, which: str, maps: torch.Tensor) -> torch.Tensor:
    """[n, grid, grid] token maps of one ROI -> [n, rows, cols] on its view slices (bilinear)."""
    size = study.spec.size
    square = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    zoom = result.pairs.zoom
    if which == "global-to-local" and zoom is not None:    # keys on the local grid: the zoom window
        return zoom.to_view(square, *study.scaled.shape[1:])
    return study.frame.to_view(square)


def attention_volume(study: StudyView, results, which: str = "local-to-global") -> Volume:
    """A float32 volume in the input geometry, 0 outside the staged slices, 1 at each ROI's hottest token.

    Each ROI's maps are stretched between their own minimum and maximum, so every
    thrombus shows and a flat map shows nothing; where ROIs overlap the larger value wins.
    """
    view = np.zeros(study.scaled.shape, dtype=np.float32)
    for result in results:
        maps = result.attention.get(MAP_KEYS[which])
        if maps is None or len(maps) == 0:
            continue
        low, high = maps.amin(), maps.amax()
        if float(high - low) <= 1e-6 * float(high.clamp(min=1e-12)):
            continue      # attention spread evenly: nothing to point at
        planes = token_maps_in_view(study, result, which, (maps - low) / (high - low)).clamp_(0, 1).numpy()
        idx = result.pairs.view_slices
        view[idx] = np.maximum(view[idx], planes)
    return study.volume.with_array(study.orientation.undo(view))


def hot_spot_ijk(volume: Volume) -> np.ndarray:
    """(i, j, k) of the overlay's maximum."""
    k, j, i = np.unravel_index(int(np.argmax(volume.array)), volume.array.shape)
    return np.array([i, j, k])


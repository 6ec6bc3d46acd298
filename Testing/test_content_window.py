"""The content check runs the detector on the part of each slice that decides its output inside the ROI box
(the box and the network's receptive field), and must give there what the whole slice gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from DVTStagingLib.detection.network import ThrombusUNet, for_inference
from DVTStagingLib.staging.content import context_window


def _box(n, rows, cols, r, c):
    box = torch.zeros(n, rows, cols, dtype=torch.bool)
    box[:, r[0]:r[1], c[0]:c[1]] = True
    return box


def test_pixels_past_the_receptive_radius_do_not_change_the_output_inside_the_box():
    from DVTStagingLib.detection.detector import load_detector

    net = load_detector(None, "cpu").network        # trained weights: an output that reacts to its input
    torch.manual_seed(1)
    x = torch.rand(2, 3, 160, 240)
    r0, r1, c0, c1 = 70, 86, 100, 121
    reach = net.receptive_radius

    def changed_past(distance):
        outside = torch.ones(160, 240, dtype=torch.bool)
        outside[max(r0 - distance, 0):r1 + distance, max(c0 - distance, 0):c1 + distance] = False
        y = x.clone()
        y[:, :, outside] = torch.rand(2, 3, int(outside.sum()))
        with torch.no_grad():
            return net(y.contiguous(memory_format=torch.channels_last))[:, r0:r1, c0:c1]

    with torch.no_grad():
        before = net(x.contiguous(memory_format=torch.channels_last))[:, r0:r1, c0:c1]
    torch.testing.assert_close(changed_past(reach), before, rtol=0, atol=1e-5)
    # and the radius is not wildly loose: the same change at half of it does reach the box
    assert (changed_past(reach // 2) - before).abs().max() > 1e-3


@pytest.mark.parametrize("where", ["middle", "corner", "edge"])
def test_the_window_gives_the_whole_slice_output_inside_the_box(where):
    torch.manual_seed(0)
    net = for_inference(ThrombusUNet(base_channels=8, depth=4))
    rows, cols = 176, 256
    spans = {"middle": ((80, 96), (120, 141)), "corner": ((0, 12), (240, 256)), "edge": ((60, 75), (0, 9))}
    box = _box(3, rows, cols, *spans[where])
    box[1] = False                          # a slice the box does not reach keeps the window's shape
    x = torch.rand(3, 3, rows, cols).contiguous(memory_format=torch.channels_last)
    window = context_window(net, box)
    for part, size in zip(window, (rows, cols)):
        assert part.start % net.stride == 0 and (part.stop - part.start) % net.stride == 0 or part.stop == size
    assert (window[0].stop - window[0].start) * (window[1].stop - window[1].start) < rows * cols
    with torch.no_grad():
        whole = net(x)[:, window[0], window[1]]
        cropped = net(x[:, :, window[0], window[1]].contiguous(memory_format=torch.channels_last))
    inside = box[:, window[0], window[1]]
    torch.testing.assert_close(cropped[inside], whole[inside], rtol=0, atol=1e-5)


def test_a_network_of_unknown_reach_runs_on_the_whole_slice():
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x[:, 0]

    window = context_window(Plain(), _box(1, 64, 64, (10, 20), (10, 20)))
    assert window == (slice(0, 64), slice(0, 64))


def test_the_content_check_of_a_phantom_roi_is_the_whole_slice_one(phantom_dataset):
    """The bundled detector on a phantom ROI: the probability from the window is the whole slices' one."""
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.io.roi import read_rois
    from DVTStagingLib.io.volume import read_volume
    from DVTStagingLib.staging.content import content_inputs, roi_thrombus_probability

    detector = load_detector(None, "cpu")
    case = next(c for c in phantom_dataset.cases if c.labels)
    volume = read_volume(phantom_dataset.path(case.image))
    roi = read_rois(phantom_dataset.path(case.rois[0]))[0]
    inputs, box = content_inputs(detector, volume, roi)
    with torch.inference_mode():
        prob = torch.sigmoid(detector.network(inputs.contiguous(memory_format=torch.channels_last)).float())
    whole = float((prob * box).amax())
    assert roi_thrombus_probability(detector, volume, roi) == pytest.approx(whole, abs=1e-5)
    assert np.isfinite(whole) and whole > 0

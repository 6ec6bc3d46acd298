"""The thrombus/muscle ratio read from an ROI box alone (imaging.signal_ratio.estimated_ratio_in_box), on slabs
whose true ratio is known: the value a radiologist reads in the results table."""

from __future__ import annotations

import numpy as np
import pytest

from DVTStagingLib.imaging.signal_ratio import estimated_ratio_in_box, muscle_level, otsu_threshold, segment_in_box

SPACING = (1.0, 1.0)
MUSCLE, FAT, AIR, LUMEN = 100.0, 300.0, 4.0, 12.0


def thigh_slab(thrombus: float, fat_around: bool = False, near_skin: bool = False, seed: int = 0):
    """[8, 160, 160] T1 black-blood slab: a thigh of muscle in air, a vein (dark lumen, thrombus filling 40 % of
    it at one side, as an eccentric thrombus does) and its ROI box; optionally more fat than muscle around
    the box, or the box 8 mm under the skin."""
    rng = np.random.default_rng(seed)
    n, size = 8, 160
    rr, cc = np.mgrid[0:size, 0:size]
    thigh = (rr - 80) ** 2 + (cc - 80) ** 2 <= 70 ** 2
    img = np.where(thigh, MUSCLE, AIR).astype(np.float32)
    centre = (80, 142) if near_skin else (80, 80)
    if fat_around:   # intermuscular fat planes: most of the ring 5-30 mm around the box
        img[thigh & (np.abs(rr - 80) + np.abs(cc - 80) > 18) & (np.abs(rr - 80) + np.abs(cc - 80) < 48)] = FAT
    vein = (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= 8 ** 2
    img[vein] = LUMEN
    img[vein & (cc <= centre[1] - 2)] = thrombus
    slab = np.repeat(img[None], n, axis=0)
    slab += rng.normal(0, 4.0, slab.shape).astype(np.float32)
    slab = np.abs(slab)            # magnitude images: the noise floor of air stays positive
    box = np.zeros(slab.shape, bool)
    box[1:7, centre[0] - 10: centre[0] + 11, centre[1] - 10: centre[1] + 11] = True
    return slab, box


@pytest.mark.parametrize("ratio", [1.0, 1.6, 2.5])
def test_the_ratio_of_a_thrombus_in_muscle_is_read_off_the_box(ratio):
    slab, box = thigh_slab(ratio * MUSCLE)
    assert estimated_ratio_in_box(slab, box, SPACING) == pytest.approx(ratio, rel=0.1)


def test_more_fat_than_muscle_around_the_box_does_not_make_fat_the_reference():
    slab, box = thigh_slab(2.5 * MUSCLE, fat_around=True)
    ring = np.zeros(slab.shape[1:], bool)
    ring[45:116, 45:116] = True
    ring[75:86, 75:86] = False
    assert np.mean(np.abs(slab[2][ring] - FAT) < 40) > np.mean(np.abs(slab[2][ring] - MUSCLE) < 40)  # fat dominates
    assert estimated_ratio_in_box(slab, box, SPACING) == pytest.approx(2.5, rel=0.1)


def test_a_box_under_the_skin_does_not_take_air_for_muscle():
    slab, box = thigh_slab(1.8 * MUSCLE, near_skin=True)
    assert estimated_ratio_in_box(slab, box, SPACING) == pytest.approx(1.8, rel=0.1)


def test_no_tissue_around_the_box_gives_no_ratio():
    slab, box = thigh_slab(2.0 * MUSCLE)
    air = np.abs(np.random.default_rng(1).normal(0, 4.0, slab.shape)).astype(np.float32)
    assert muscle_level(slab, air[:, :20, :20]) is None            # only the noise floor of air around
    assert estimated_ratio_in_box(slab, np.zeros_like(box), SPACING) is None


def test_a_background_stored_as_zeros_leaves_muscle_the_reference():
    """Many scanners and converters store the air outside the body as exact zeros: then no air class exists,
    and the split that removes air must not remove muscle instead."""
    slab, box = thigh_slab(2.2 * MUSCLE, fat_around=True)
    slab[slab < 30] = np.where(slab[slab < 30] < 20, 0.0, slab[slab < 30])     # air zeroed, the lumen kept
    assert estimated_ratio_in_box(slab, box, SPACING) == pytest.approx(2.2, rel=0.1)


def test_otsu_splits_two_populations_between_them():
    values = np.concatenate([np.full(500, 1.0), np.full(300, 5.0)])
    assert 1.0 < otsu_threshold(values) < 5.0


def test_a_thrombus_segment_gives_the_signal_where_the_box_alone_cannot():
    """A small eccentric thrombus fills too little of its box's centre for the box's upper quartile; its segment
    (the detector's thrombus pixels, say) gives the signal.  A segment with too few pixels in the box is not
    used."""
    slab, box = thigh_slab(2.5 * MUSCLE)
    rr, cc = np.mgrid[0:slab.shape[1], 0:slab.shape[2]]
    small = ((rr - 80) ** 2 + (cc - 76) ** 2 <= 2 ** 2)            # 13 pixels of a 21 x 21 box, off-centre
    slab[:, (rr - 80) ** 2 + (cc - 80) ** 2 <= 8 ** 2] = LUMEN
    slab[:, small] = 2.5 * MUSCLE
    segment = np.zeros(slab.shape, bool)
    segment[1:7][:, small] = True
    assert estimated_ratio_in_box(slab, box, SPACING) < 2.5 / 1.5                      # the box alone misses it
    assert estimated_ratio_in_box(slab, box, SPACING, segment) == pytest.approx(2.5, rel=0.05)
    assert segment_in_box(box, segment)
    few = np.zeros_like(segment)
    few[3, 80, 76] = True
    assert not segment_in_box(box, few)
    assert estimated_ratio_in_box(slab, box, SPACING, few) == estimated_ratio_in_box(slab, box, SPACING)

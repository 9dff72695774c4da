"""cvkit-cutout: one square per image, cut by the border as in the paper."""

from __future__ import annotations

import torch

from cvkit_cutout import Cutout


def test_cutout_blanks_one_square_per_image_possibly_cut_by_the_border() -> None:
    torch.manual_seed(0)
    images = torch.ones(500, 3, 10, 10)
    out, _ = Cutout(size=4)(images, torch.zeros(500, dtype=torch.long))
    blank = out[:, 0] == 0
    assert torch.equal(blank[:, None].expand_as(out), out == 0)  # all channels together
    areas = blank.flatten(1).sum(1)
    assert (
        areas.max() == 16 and areas.min() >= 4 and (areas < 16).any()
    )  # squares clipped at the border
    rows, cols = blank.any(2), blank.any(1)
    assert torch.equal(areas, rows.sum(1) * cols.sum(1))  # each blank region is one rectangle
    assert torch.equal(Cutout(size=4, p=0.0)(images, None)[0], images)

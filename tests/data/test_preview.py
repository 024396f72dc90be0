"""Contact sheets: layout and the depth colour ramp."""
from __future__ import annotations

import numpy as np

from stages.data.preview import _RAMP, colorize_depth, contact_sheet


def test_colorize_depth_ends_of_ramp():
    depth = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    rgb = colorize_depth(depth)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == _RAMP[0].astype(int).tolist()  # nearest
    assert rgb[1, 0].tolist() == _RAMP[-1].astype(int).tolist()  # farthest
    assert rgb[1, 1].tolist() == _RAMP[-1].astype(int).tolist()  # unknown drawn as far


def test_contact_sheet_layout():
    images = np.zeros((5, 4, 4, 3), np.uint8)
    images[2] = 77
    depth = np.tile(np.arange(4, dtype=np.float32), (5, 4, 1))
    sheet = contact_sheet(images, [depth, depth], columns=3, gap=2)
    # 2 rows of tiles, each tile 3 maps of 4 px with 2 px gaps; 3 columns
    assert sheet.shape == (2 + 2 * (3 * 4 + 2 * 2 + 2), 2 + 3 * (4 + 2), 3)
    assert (sheet[2:6, 2 + 2 * 6 : 6 + 2 * 6] == 77).all()  # item 2 = row 0, column 2
    assert sheet[8, 2].tolist() == _RAMP[0].astype(int).tolist()  # its depth row starts at the near end

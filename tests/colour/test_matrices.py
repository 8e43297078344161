"""The Rec2020 / Rec709 matrices built from the standards' primaries equal colour-science's (the oracle: the
package builds them itself because importing colour-science costs about a second per process)."""

from __future__ import annotations

import numpy as np

from darkproxy.colour.matrices import normalised_primary_matrix, rec2020_to_rec709_matrix, y_rec2020


def test_rec2020_matrices_equal_colour_science() -> None:
    import colour

    cs = colour.RGB_COLOURSPACES
    bt2020, bt709 = cs["ITU-R BT.2020"], cs["ITU-R BT.709"]
    np.testing.assert_allclose(rec2020_to_rec709_matrix(), colour.matrix_RGB_to_RGB(bt2020, bt709), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_rec2020(), bt2020.matrix_RGB_to_XYZ[1], rtol=0, atol=1e-12)
    for space in (bt2020, bt709, cs["Display P3"], cs["Adobe RGB (1998)"]):
        npm = normalised_primary_matrix(tuple(map(tuple, space.primaries)), tuple(space.whitepoint))
        np.testing.assert_allclose(npm, space.matrix_RGB_to_XYZ, rtol=0, atol=1e-5)  # Adobe RGB: its 5 decimals

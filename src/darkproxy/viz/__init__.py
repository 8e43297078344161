"""Things people look at, built from ``linear_rec2020`` images.

* :mod:`~darkproxy.viz.images`: display encoding, error maps, labelled panels, PNGs, reading images
* :mod:`~darkproxy.viz.plots`: matplotlib curves and scatter plots (files only)
* :mod:`~darkproxy.viz.video`: mp4 from frames (imageio-ffmpeg), frame counts
* :mod:`~darkproxy.viz.report`: self-contained HTML reports
* :mod:`~darkproxy.viz.browser`: headless-Chromium rendering checks, screenshots
"""

"""Things people look at: metrics, images, plots, videos and HTML reports."""

"""Raw files: synthetic Bayer DNGs (the embedded default) and the packed mosaic
of any raw darktable reads."""

"""Colour: encodings (display, PU21, loss), matrices, image metrics."""

"""The data errors, below every data module: `DataError` (re-exported by `mlrelabel.data.checks`, where it has
always been imported from) and `ImageDecodeError`."""

from __future__ import annotations

__all__ = ['DataError', 'ImageDecodeError']


class DataError(ValueError):
    """A data set that cannot be trained on as given; the message names the file and the entry or line."""


class ImageDecodeError(DataError):
    """An image file that cannot be decoded faithfully (`mlrelabel.data.images`); the message names the file and
    why. Sources treat it like an unreadable file: skipped, counted and listed."""

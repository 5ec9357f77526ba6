"""`ImageDecodeError`, below every data module; its base `DataError` lives with the package's other
exceptions in `mlrelabel.errors`."""

from __future__ import annotations

from mlrelabel.errors import DataError

__all__ = ['ImageDecodeError']


class ImageDecodeError(DataError):
    """An image file that cannot be decoded faithfully (`mlrelabel.data.images`); the message names the file and
    why. Sources treat it like an unreadable file: skipped, counted and listed."""

"""Image files decoded as a person sees them: `read_image(path) -> [H, W, 3] uint8`, the pixels the tool trains on.

Every source (label files, annotation folders, attribute CSVs, ImageNet folders and TFDS records), the data
checks, `mlrelabel-predict` and the review page decode through `open_image` here, so they agree pixel for pixel:

- EXIF orientation is applied (`PIL.ImageOps.exif_transpose`): a phone photo stored sideways is read upright.
- 16-bit grey (`I;16`, `I;16L`, `I;16B`, `I;16N`, and `I` holding 16-bit values, as PNG and TIFF decode to) is
  scaled by the 16-bit range (65535 -> 255, rounded), never clipped at 255.
- Transparency (RGBA, LA, PA, premultiplied alpha, palette or grey/RGB images with a transparent colour) is
  composited on white, as image viewers and browsers show it on a page; fully opaque images are unchanged.
- Palette, 1-bit and grey images become RGB with equal channels; CMYK uses its embedded ICC profile when it has
  one (else Pillow's CMYK -> RGB conversion); YCbCr and other colour modes Pillow converts are converted.
- Anything else (float pixels of unknown range, signed or 32-bit integers beyond 16 bits, modes Pillow cannot
  convert, truncated or corrupt data) raises `ImageDecodeError`, which the sources treat like an unreadable file:
  skipped, counted and listed (`mlrelabel.data.checks`).
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from mlrelabel.data.errors import ImageDecodeError

__all__ = ['ImageDecodeError', 'index_array', 'open_image', 'read_image']

SIXTEEN_BIT = ('I;16', 'I;16L', 'I;16B', 'I;16N')
ALPHA = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
WHITE = (255, 255, 255, 255)


def read_image(path: str | os.PathLike | bytes | BinaryIO) -> np.ndarray:
    """The image at `path` (a file path, its encoded bytes or a binary file object) as `[H, W, 3]` uint8 RGB,
    decoded as described in the module docstring. Raises `ImageDecodeError` when it cannot be."""
    return np.asarray(open_image(path), dtype=np.uint8)


def open_image(source: str | os.PathLike | bytes | BinaryIO, draft: int | None = None) -> Image.Image:
    """`read_image` as a loaded RGB PIL image. `draft`: JPEGs decode at the smallest DCT scale that keeps both
    sides >= draft pixels (much faster for large photos); None decodes at full size."""
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else '<image bytes>'
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            if draft is not None:
                img.draft('RGB', (draft, draft))
            img.load()  # truncated or corrupt data raises here
            return _to_rgb(ImageOps.exif_transpose(img))
    except ImageDecodeError as e:
        raise ImageDecodeError(f'{name}: {e}') from None
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means the file cannot be read
        raise ImageDecodeError(f'{name}: {type(e).__name__}: {e}') from e


def _to_rgb(img: Image.Image) -> Image.Image:
    """A loaded image of any mode as RGB (module docstring); raises `ImageDecodeError` for modes without a
    faithful conversion."""
    if img.mode in SIXTEEN_BIT or img.mode == 'I':
        img = _sixteen_bit_to_grey(img)
    elif img.mode in ('F', 'I;16S') or img.mode.startswith('I;32'):
        raise ImageDecodeError(f'mode {img.mode}: pixel values without a known range')
    if img.mode in ('P', 'L', 'RGB', '1') and 'transparency' in img.info:
        img = img.convert('RGBA')  # a transparent palette entry or key colour becomes alpha
    if img.mode in ALPHA:
        img = Image.alpha_composite(Image.new('RGBA', img.size, WHITE), img.convert('RGBA'))
    if img.mode == 'CMYK' and img.info.get('icc_profile'):
        img = _cmyk_with_profile(img)
    if img.mode != 'RGB':
        img = img.convert('RGB')
    return img


def _sixteen_bit_to_grey(img: Image.Image) -> Image.Image:
    """16-bit grey (or mode `I` holding values in [0, 65535]) → 8-bit `L`, scaled by 255 / 65535 and rounded."""
    values = np.asarray(img)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ImageDecodeError(
            f'mode {img.mode}: values {values.min()}..{values.max()} outside the 16-bit range 0..65535'
        )
    grey = np.rint(values.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    return Image.fromarray(grey, 'L')


def _cmyk_with_profile(img: Image.Image) -> Image.Image:
    """CMYK → sRGB through the image's embedded ICC profile; Pillow's plain conversion if it cannot be used."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info['icc_profile']))
        return ImageCms.profileToProfile(img, profile, ImageCms.createProfile('sRGB'), outputMode='RGB')
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img.convert('RGB')


def index_array(indices, length: int) -> np.ndarray:
    """`indices` (a slice or a sequence of ints) of a reader of `length` rows as a flat int64 array."""
    if isinstance(indices, slice):
        indices = range(*indices.indices(length))
    return np.asarray(indices, dtype=np.int64).reshape(-1)

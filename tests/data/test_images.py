"""`mlrelabel.read_image`: files decoded as a person sees them (EXIF orientation, 16-bit, palette, grey + alpha,
CMYK, RGBA), on photo-like JPEGs and tiny images; what cannot be decoded faithfully is skipped and listed."""

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

import mlrelabel
from mlrelabel.data.errors import ImageDecodeError
from mlrelabel.data.images import open_image


@pytest.fixture(scope='module')
def photo():
    """A photo-like upright image, 320 x 200 (sklearn's sample photograph), with a pure red block top left."""
    from sklearn.datasets import load_sample_image

    image = np.asarray(Image.fromarray(load_sample_image('china.jpg')).resize((320, 200)), np.uint8).copy()
    image[:40, :60] = (255, 0, 0)
    return image


def _jpeg(path, image: Image.Image, **kwargs):
    image.save(path, 'JPEG', quality=95, **kwargs)
    return str(path)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _close(a, b, tol=4.0):
    return a.shape == b.shape and float(np.abs(a.astype(float) - b.astype(float)).mean()) < tol


@pytest.mark.parametrize(
    'orientation,stored',
    [
        (6, Image.Transpose.ROTATE_90),  # shown after a 90° clockwise turn: stored turned counter-clockwise
        (8, Image.Transpose.ROTATE_270),  # shown after a 90° counter-clockwise turn
    ],
)
def test_exif_orientation_is_applied(photo, tmp_path, orientation, stored):
    path = _jpeg(tmp_path / 'rotated.jpg', Image.fromarray(photo).transpose(stored), exif=_exif(orientation))
    raw = np.asarray(Image.open(path).convert('RGB'))
    assert raw.shape == (320, 200, 3)  # stored sideways
    image = mlrelabel.read_image(path)
    assert image.dtype == np.uint8 and image.shape == (200, 320, 3)
    assert _close(image, photo)
    assert image[:30, :50].mean(axis=(0, 1)) == pytest.approx([255, 0, 0], abs=12)  # red block upright
    assert not _close(image, np.asarray(Image.fromarray(photo).transpose(Image.Transpose.ROTATE_180)))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 48 * 64).round().astype(np.uint16).reshape(48, 64)
    Image.fromarray(values).save(tmp_path / 'grey16.png')
    assert Image.open(tmp_path / 'grey16.png').mode == 'I;16'
    image = mlrelabel.read_image(str(tmp_path / 'grey16.png'))
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)
    assert image.shape == (48, 64, 3) and (image == expected[..., None]).all()
    assert image.max() == 255 and image.min() == 0 and len(np.unique(image)) == 256
    big = Image.frombytes('I;16B', (64, 48), values.astype('>u2').tobytes())
    assert (np.asarray(open_image_of(big))[..., 0] == expected).all()
    as_int = Image.fromarray(values.astype(np.int32), 'I')  # how older Pillow versions open 16-bit PNG
    assert (np.asarray(open_image_of(as_int))[..., 0] == expected).all()


def open_image_of(image: Image.Image, fmt='TIFF') -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return open_image(buffer.getvalue())


def test_palette_images_with_and_without_transparency(tmp_path):
    colours = np.array([[10, 20, 30], [200, 100, 0], [0, 255, 128]], np.uint8)
    index = (np.arange(12 * 16).reshape(12, 16) % 3).astype(np.uint8)
    palette = Image.fromarray(index, 'P')
    palette.putpalette(colours.ravel().tolist())
    palette.save(tmp_path / 'p.png')
    assert (mlrelabel.read_image(str(tmp_path / 'p.png')) == colours[index]).all()
    palette.save(tmp_path / 'pt.png', transparency=1)  # entry 1 transparent: shown on white
    image = mlrelabel.read_image(str(tmp_path / 'pt.png'))
    expected = colours[index].copy()
    expected[index == 1] = 255
    assert (image == expected).all()


def test_grey_alpha_and_rgba_are_composited_on_white(tmp_path):
    alpha = np.array([[0, 128, 255, 255]], np.uint8).repeat(4, 0)
    grey = np.full((4, 4), 100, np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1), 'LA').save(tmp_path / 'la.png')
    image = mlrelabel.read_image(str(tmp_path / 'la.png'))
    assert (image[:, 0] == 255).all() and (image[:, 2:] == 100).all()
    assert image[0, 1, 0] == pytest.approx(100 * 128 / 255 + 255 * 127 / 255, abs=1)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), 'RGBA').save(tmp_path / 'rgba.png')
    image = mlrelabel.read_image(str(tmp_path / 'rgba.png'))
    assert (image[:, 0] == 255).all() and (image[:, 3] == (200, 0, 0)).all()
    assert image[0, 1] == pytest.approx([200 * 128 / 255 + 255 * 127 / 255, 127, 127], abs=1)


def test_cmyk_jpeg_and_grey_read_as_rgb(photo, tmp_path):
    path = _jpeg(tmp_path / 'cmyk.jpg', Image.fromarray(photo).convert('CMYK'))
    assert Image.open(path).mode == 'CMYK'
    assert _close(mlrelabel.read_image(path), photo, tol=5.0)
    grey = np.asarray(Image.fromarray(photo).convert('L'))
    path = _jpeg(tmp_path / 'grey.jpg', Image.fromarray(grey))
    image = mlrelabel.read_image(path)
    assert image.shape == (200, 320, 3) and (image[..., 0] == image[..., 2]).all()
    assert _close(image[..., 0], grey, tol=3.0)


def test_tiny_and_photo_jpegs_match_pillow_for_plain_rgb(photo, tmp_path):
    for size in ((3, 2), (96, 96), (500, 333)):
        image = np.asarray(Image.fromarray(photo).resize(size))
        path = _jpeg(tmp_path / f'{size[0]}.jpg', Image.fromarray(image))
        assert (mlrelabel.read_image(path) == np.asarray(Image.open(path).convert('RGB'))).all()
    with open(path, 'rb') as f:
        data = f.read()
    assert (mlrelabel.read_image(data) == mlrelabel.read_image(path)).all()  # encoded bytes too


def test_what_cannot_be_decoded_faithfully_is_a_typed_error(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32), 'F').save(tmp_path / 'float.tif')
    with pytest.raises(ImageDecodeError, match=r'float\.tif: mode F'):
        mlrelabel.read_image(str(tmp_path / 'float.tif'))
    Image.fromarray(np.full((4, 4), 70000, np.int32), 'I').save(tmp_path / 'wide.tif')
    with pytest.raises(ImageDecodeError, match='outside the 16-bit range'):
        mlrelabel.read_image(str(tmp_path / 'wide.tif'))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / 'cut.jpg')
    data = (tmp_path / 'cut.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match='cut.jpg'):
        mlrelabel.read_image(str(tmp_path / 'cut.jpg'))


def test_sources_decode_alike_and_list_skipped_images(photo, tmp_path):
    """A label file's images go through read_image (rotated JPEG upright); an undecodable one is skipped,
    counted and listed in skipped.json with its split."""
    from mlrelabel.data import checks
    from mlrelabel.data.sources import load_image_dataset

    square = photo[:, 60:260]
    _jpeg(tmp_path / 'rot.jpg', Image.fromarray(square).transpose(Image.Transpose.ROTATE_90), exif=_exif(6))
    Image.fromarray(np.full((4, 4), 0.5, np.float32), 'F').save(tmp_path / 'float.tif')
    (tmp_path / 'train.json').write_text(
        json.dumps(
            {'data': [{'img_path': 'rot.jpg', 'labels': [0]}, {'img_path': 'float.tif', 'labels': [1]}]}
        )
    )
    with pytest.warns(RuntimeWarning, match=r'skipped 1 of 2 images .*float\.tif \(.*mode F'):
        ds, report = load_image_dataset(tmp_path / 'train.json', 200)
    assert len(ds) == 1 and report['skipped'] == 1
    assert _close(ds.images[0], square)
    val = dataclasses.replace(ds, skipped=None)  # a val split whose images all decoded
    record = checks.write_skipped({'train': ds, 'val': val}, str(tmp_path / 'run'))
    with open(tmp_path / 'run' / 'skipped.json') as f:
        assert json.load(f) == record
    assert record['count'] == 1 and record['by_split'] == {'train': 1, 'val': 0}
    assert record['files'][0]['split'] == 'train' and record['files'][0]['path'].endswith('float.tif')
    assert 'mode F' in record['files'][0]['reason']
    assert checks.skipped_count(str(tmp_path / 'run')) == 1 and checks.skipped_count(str(tmp_path)) is None

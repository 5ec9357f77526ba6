"""ImageNet from TFDS ArrayRecord datasets (`data.source=tfds`): metadata cached once, lazy image readers.

Part of the ImageNet sources (`mlrelabel.data.imagenet`); reading needs no TensorFlow.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from mlrelabel import parallel
from mlrelabel.data.imagenet_labels import _num_classes, _read_real, _real_truth, _subsample
from mlrelabel.data.imagenet_readers import TfdsImages, open_tfds_source
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.sources import Dataset
from mlrelabel.errors import DataError
from mlrelabel.io_utils import atomic_save_npz

# --------------------------------------------------------------------------------------------- TFDS


def tfds_metadata(
    name: str,
    split: str,
    data_dir: str | None,
    fields: Sequence[str],
    cache: str | None,
    image_key: str = 'image',
) -> dict:
    """Per-record `fields` of a TFDS split as arrays (ragged sequences as lists), read once (threads, progress
    bar) and cached in the npz `cache`. Reading touches every record, images included (ArrayRecord stores
    whole examples), so at ImageNet scale the first run spends minutes here and later runs none."""
    if cache and os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        if all(f in out or f + '__offsets' in out for f in fields):
            return _unpack_ragged(out, fields)
    source = open_tfds_source(name, split, data_dir, skip_image=image_key)
    n = len(source)
    chunks = [range(s, min(s + 1024, n)) for s in range(0, n, 1024)]

    def read(chunk):
        records = (
            source.__getitems__(list(chunk))
            if hasattr(source, '__getitems__')
            else [source[i] for i in chunk]
        )
        return [{f: r[f] for f in fields} for r in records]

    rows = []
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for part in tqdm(
            pool.map(read, chunks),
            total=len(chunks),
            desc=f'{name}/{split} labels',
            leave=False,
            disable=len(chunks) < 8 or not parallel.is_main_process(),
        ):
            rows += part
    packed = {}
    for f in fields:
        values = [r[f] for r in rows]
        if values and isinstance(values[0], (bytes, str)):
            packed[f] = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values], dtype=np.str_)
        elif values and np.ndim(values[0]) == 1:
            lengths = [len(v) for v in values]
            packed[f + '__offsets'] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            packed[f + '__values'] = np.concatenate(
                [np.asarray(v, np.int64) for v in values] + [np.zeros(0, np.int64)]
            )
        else:
            packed[f] = np.asarray(values)
    if cache and parallel.is_main_process():
        atomic_save_npz(cache, **packed)
    return _unpack_ragged(packed, fields)


def _unpack_ragged(packed: dict, fields) -> dict:
    out = {}
    for f in fields:
        if f + '__offsets' in packed:
            o, v = packed[f + '__offsets'], packed[f + '__values']
            out[f] = [v[o[i] : o[i + 1]].tolist() for i in range(len(o) - 1)]
        else:
            out[f] = packed[f]
    return out


def _tfds_has(name: str, data_dir: str | None) -> bool:
    import tensorflow_datasets as tfds

    try:
        return 'validation' in tfds.builder(name, data_dir=data_dir).info.splits
    except Exception:  # noqa: BLE001 - absent or unprepared
        return False


def _tfds_real_truth(names: list[str], num_classes: int, data_dir: str | None, cache_dir: str) -> LabelTable:
    """The ReaL label sets of the validation images `names` from a prepared TFDS `imagenet2012_real`."""
    real = tfds_metadata(
        'imagenet2012_real',
        'validation',
        data_dir,
        ('real_label', 'file_name'),
        os.path.join(cache_dir, 'tfds_imagenet2012_real_validation_meta.npz'),
    )
    by_name = {str(f): r for f, r in zip(real['file_name'], real['real_label'])}
    missing = [x for x in names if x not in by_name]
    if missing:
        raise DataError(
            f'imagenet2012_real has no entry for {len(missing)} validation images (first: {missing[0]})'
        )
    return LabelTable.from_lists([by_name[x] for x in names], num_classes)


def load_tfds(config, workdir: str) -> dict:
    """`{'train', 'val'}` Datasets from TFDS ArrayRecord splits `train` and `validation` of `data.tfds_name`
    (default imagenet2012). Val truth = ReaL sets from `data.real_json` or a prepared `imagenet2012_real`.

    Config fields: `data.tfds_name`, `data.tfds_data_dir` ('' = TFDS default), `data.image_size`,
    `data.num_classes` (0 = the dataset's), `data.num_train`/`data.num_val` (> 0: a seeded subset),
    `data.real_json`.
    """
    import tensorflow_datasets as tfds

    d = config.data
    name = d.tfds_name
    data_dir = d.tfds_data_dir or None
    label_feature = tfds.builder(name, data_dir=data_dir).info.features['label']
    num_classes = _num_classes(config, label_feature.num_classes, f'TFDS {name}')
    class_names = list(getattr(label_feature, 'names', None) or []) or None
    cache_dir = os.path.join(workdir, 'data')
    out = {}
    for i, (split, tfds_split, limit) in enumerate(
        (('train', 'train', d.num_train), ('val', 'validation', d.num_val))
    ):
        meta = tfds_metadata(
            name,
            tfds_split,
            data_dir,
            ('label', 'file_name'),
            os.path.join(cache_dir, f'tfds_{name}_{tfds_split}_meta.npz'),
        )
        keep = _subsample(len(meta['label']), limit, d.seed + i)
        names = [str(x) for x in meta['file_name'][keep]]
        truth = None
        if split == 'val':
            if d.real_json:
                truth = _real_truth(
                    _read_real(d.real_json, num_classes), names, num_classes, d.real_json, keep
                )
            elif _tfds_has('imagenet2012_real', data_dir):
                truth = _tfds_real_truth(names, num_classes, data_dir, cache_dir)
        out[split] = Dataset(
            images=TfdsImages(name, tfds_split, data_dir, d.image_size, rows=keep),
            labels=LabelTable.from_single(meta['label'][keep].astype(np.int64), num_classes),
            truth=truth,
            paths=names,
            name=f'{name}_{split}',
            class_names=class_names,  # TFDS's label names (WNIDs for imagenet2012)
        )
    return out


def write_tfds_array_record(data_dir: str, name: str, splits: dict[str, list[dict]]) -> str:
    """Writes a TFDS dataset `name` (a registered builder, e.g. imagenet2012) in its ArrayRecord layout
    without TensorFlow: `splits[split]` = list of examples, each a dict feature → bytes, str, int, bool or
    list of ints (encoded images as bytes). For tests, benchmarks and converting small folders.
    Returns the version directory."""
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter
    from tensorflow_datasets.proto import tf_example_pb2
    from tensorflow_datasets.proto import tf_feature_pb2 as fpb

    builder = tfds.builder(name, data_dir=data_dir)
    os.makedirs(builder.data_dir, exist_ok=True)

    def feature(value):
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, bytes):
            return fpb.Feature(bytes_list=fpb.BytesList(value=[value]))
        if isinstance(value, (bool, np.bool_)):
            return fpb.Feature(int64_list=fpb.Int64List(value=[int(value)]))
        if isinstance(value, (int, np.integer)):
            return fpb.Feature(int64_list=fpb.Int64List(value=[int(value)]))
        return fpb.Feature(int64_list=fpb.Int64List(value=[int(v) for v in value]))

    infos = []
    for split, examples in splits.items():
        template = tfds.core.ShardedFileTemplate(
            data_dir=builder.data_dir, dataset_name=name, split=split, filetype_suffix='array_record'
        )
        writer = ArrayRecordWriter(
            os.fspath(template.sharded_filepath(shard_index=0, num_shards=1)), 'group_size:1'
        )
        for ex in examples:
            proto = tf_example_pb2.Example(
                features=fpb.Features(feature={k: feature(v) for k, v in ex.items()})
            )
            writer.write(proto.SerializeToString())
        writer.close()
        infos.append(
            tfds.core.SplitInfo(
                name=split, shard_lengths=[len(examples)], num_bytes=0, filename_template=template
            )
        )
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.as_proto.file_format = 'array_record'
    builder.info.write_to_directory(builder.data_dir)
    return os.fspath(builder.data_dir)

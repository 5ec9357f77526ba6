"""The run manifest (`<workdir>/run.json`) and the Python API over finished runs.

    run = mlrelabel.load_run('runs/demo')
    run.class_names, run.head, run.rounds, run.chosen_round, run.labels, run.thresholds
    probs = run.predict(images)      # uint8 [N, H, W, 3] -> float32 [N, C], the chosen round's model
    sets, scores = run.predict_labels(images)   # label sets by the run's own rule (mlrelabel.relabel.label_sets)
    mlrelabel.run_config('mc_dropout:smoke', 'runs/demo', train__epochs=1)

The manifest's schema and writer: `mlrelabel.manifest`. A run without run.json (older runs, interrupted
ones) gets the same fields from config.json and its checkpoints (`derive_manifest`).
"""

from __future__ import annotations

import functools
import json
import os

import ml_collections
import numpy as np

from mlrelabel.config import schema
from mlrelabel.manifest import (
    has_steps,
    manifest_fields,
    read_config,
    read_manifest,
)


def _json_or_empty(path: str) -> dict:
    """The JSON document at `path`, or {} when there is none."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _round_fields(workdir: str, config, rounds: list) -> tuple[str, dict]:
    """`(head, manifest fields)` of a relabel run whose `rounds` have checkpoints: its chosen round (the one
    summary.json names, else the last), every round's checkpoint and head, and its label file."""
    from mlrelabel.eval import evaluate

    summary = _json_or_empty(os.path.join(workdir, 'summary.json'))
    chosen = summary.get('chosen_round', summary.get('best_round'))
    chosen = int(chosen) if chosen in rounds else rounds[-1]
    heads = {k: evaluate.head_of(config.train.loss if k == 0 else config.relabel.loss) for k in rounds}
    label_file = next(
        (
            p
            for p in ('labels.json', f'round_{chosen}/labels.json')
            if os.path.exists(os.path.join(workdir, p))
        ),
        None,
    )
    fields = {
        'checkpoint': f'round_{chosen}/checkpoints',
        'chosen_round': chosen,
        'rounds': [{'round': k, 'checkpoint': f'round_{k}/checkpoints', 'head': heads[k]} for k in rounds],
        'labels': label_file,
    }
    return heads[chosen], fields


def derive_manifest(workdir: str, config) -> dict:
    """The manifest of a run that wrote none: from config.json, partial_labels.json, summary.json and the
    checkpoints on disk (relabel rounds: the last trained round unless summary.json names one; MILe: the
    network metrics.json names)."""
    from mlrelabel.eval import evaluate

    info = _json_or_empty(os.path.join(workdir, 'partial_labels.json'))
    head = evaluate.head_of(config.train.loss)
    network = None  # MILe: read from metrics.json below
    if 'mile' in config:
        from mlrelabel.mile.method import SCHEMA_LOSSES

        head = evaluate.head_of(SCHEMA_LOSSES[config.mile.schema])
        # the network the run returned (teacher or student)
        network = _json_or_empty(os.path.join(workdir, 'metrics.json')).get('network')
    if 'partial' in config:
        head = config.partial.head
    fields = {}
    rounds = sorted(
        int(n.split('_')[1])
        for n in os.listdir(workdir)
        if n.startswith('round_')
        and n.split('_')[1].isdigit()
        and has_steps(os.path.join(workdir, n, 'checkpoints'))
    )
    if rounds and not has_steps(os.path.join(workdir, 'checkpoints')):
        head, fields = _round_fields(workdir, config, rounds)
    elif not has_steps(os.path.join(workdir, 'checkpoints')):
        raise FileNotFoundError(f'{workdir}: no checkpoint in checkpoints/ or round_<k>/checkpoints/')
    if os.path.exists(os.path.join(workdir, 'thresholds.json')):
        fields['thresholds'] = 'thresholds.json'
    num_classes = int(info.get('classes') or 0) or None
    return manifest_fields(
        config,
        num_classes=num_classes or 0,  # 0: taken from the checkpoint's classifier when it is opened
        head=head,
        class_names=info.get('class_names'),
        groups=info.get('groups'),
        network=network,
        **fields,
    )


def load_run(workdir: str, batch_size: int | None = None) -> 'Run':
    """Opens the run in `workdir` (its run.json, else derived from config.json and the checkpoints)."""
    config = read_config(workdir)
    manifest = read_manifest(workdir) or derive_manifest(workdir, config)
    return Run(workdir, manifest, config, batch_size)


class Run:
    """A run opened from its work directory: its config, rounds, labels, thresholds and models.

    `predict` compiles each round's model once (per batch-size bucket) and reuses it across calls.
    """

    def __init__(self, workdir: str, manifest: dict, config, batch_size: int | None = None):
        self.workdir = os.path.abspath(workdir)
        self.manifest = manifest
        self.config = config
        self.batch_size = int(batch_size or config.eval.batch_size)
        self._models: dict = {}
        self._restored: dict = {}
        if not manifest['num_classes']:  # derived manifests without a class list: the classifier's width
            self.manifest = dict(manifest, **self._classes_from_checkpoint())

    # ------------------------------------------------------------------------------------- the manifest
    method = property(lambda self: self.manifest['method'])
    num_classes = property(lambda self: int(self.manifest['num_classes']))
    class_names = property(lambda self: list(self.manifest['class_names']))
    head = property(lambda self: self.manifest['head'])
    image_size = property(lambda self: int(self.manifest['image_size']))
    chosen_round = property(lambda self: self.manifest.get('chosen_round'))
    rounds = property(lambda self: list(self.manifest.get('rounds') or []))

    @property
    def groups(self) -> list[tuple[str, int, int]]:
        """`[(name, start, stop)]` of a group-softmax head (name = the classes' 'name=' prefix), else []."""
        out = []
        for i, (a, b) in enumerate(self.manifest.get('groups') or []):
            first = self.class_names[a]
            out.append((first.rsplit('=', 1)[0] if '=' in first else f'group_{i}', int(a), int(b)))
        return out

    @functools.cached_property
    def labels(self) -> list[dict] | None:
        """The final training labels, `[{'img_path', 'labels' (class ids), 'names', 'scores'?}]`, or None."""
        if not self.manifest.get('labels'):
            return None
        from mlrelabel.data.labels import read_label_file

        path = os.path.join(self.workdir, self.manifest['labels'])
        paths, table = read_label_file(path, self.num_classes, root='')  # img_path as written
        scores = table.scores_to_lists()
        out = []
        for i, (path, ids) in enumerate(zip(paths, table.to_lists())):
            entry = {'img_path': path, 'labels': ids, 'names': [self.class_names[c] for c in ids]}
            if scores is not None:
                entry['scores'] = scores[i]
            out.append(entry)
        return out

    @functools.cached_property
    def thresholds(self) -> np.ndarray | None:
        """`[C]` float32 per-class probability thresholds the run chose (thresholds.json), or None."""
        if not self.manifest.get('thresholds'):
            return None
        path = os.path.join(self.workdir, self.manifest['thresholds'])
        with open(path) as f:
            doc = json.load(f)
        if doc.get('thresholds') is None:  # a top-k round: no thresholds
            return None
        values = np.asarray(doc.get('thresholds'), np.float32)
        if doc.get('space', 'probability') != 'probability' or values.shape != (self.num_classes,):
            raise ValueError(
                f'{path}: expected {{"thresholds": [{self.num_classes} probabilities], "space": "probability"}}, '
                f'got {values.shape[0] if values.ndim else "no"} values in space {doc.get("space")!r}'
            )
        return values

    def round_info(self, round: int | None = None) -> dict:
        """`{'round', 'checkpoint', 'head'}` of `round` (None: the chosen model)."""
        if round is None:
            return {'round': self.chosen_round, 'checkpoint': self.manifest['checkpoint'], 'head': self.head}
        for r in self.rounds:
            if int(r['round']) == int(round):
                return r
        have = [r['round'] for r in self.rounds]
        raise ValueError(f'{self.workdir}: no round {round} (rounds with a checkpoint: {have or "none"})')

    # ------------------------------------------------------------------------------------- prediction
    def predict(self, images, round: int | None = None) -> np.ndarray:
        """Probabilities `[N, C]` float32 of the chosen round's model (or `round`'s) for uint8 images.

        `images`: `[N, H, W, 3]` uint8, or a list of `[H, W, 3]` arrays or image paths (decoded by
        `mlrelabel.read_image`); any H, W: each image is resized (shorter side) and centre-cropped to the run's
        image size exactly as training images from files are. Float images with values in [0, 1] are accepted.
        """
        from mlrelabel.eval import evaluate
        from mlrelabel.partial import losses as P
        from mlrelabel.train import inference

        info = self.round_info(round)
        images = inference.prepare_images(images, self.image_size)
        if not len(images):
            return np.zeros((0, self.num_classes), np.float32)
        logits = self._model(info['checkpoint'])(images)
        if info['head'] == 'group_softmax':
            return P.group_probabilities(logits, [b - a for _, a, b in self.groups]).astype(np.float32)
        return evaluate.probabilities(logits, info['head']).astype(np.float32)

    def predict_labels(
        self,
        images,
        round: int | None = None,
        threshold: float | None = None,
        evidence: str | None = None,
        names: bool = False,
    ) -> tuple[list[list], np.ndarray]:
        """`(label sets, scores [N, C] float32)` of the chosen round's model (or `round`'s) for uint8 images.

        The rule is the one the run's labels were made with (`label_rule`, `mlrelabel.relabel.label_sets`): per-class
        thresholds on the crop evidence for relabel rounds (scores = that evidence as probabilities), else
        whole-image probabilities above the saved or configured threshold; `threshold` replaces the thresholds
        by one global probability on the same evidence. `evidence='crops'` (or 'image') asks for that evidence
        from any run: crops find the objects a single-label model ranks low on whole images. Sets hold class
        ids, or class names with `names=True`. `images` as for `predict` (arrays or paths).
        """
        from mlrelabel.relabel import label_sets

        sets, scores = label_sets.predict_labels(self, images, round, threshold, evidence)
        if names:
            sets = [[self.class_names[c] for c in row] for row in sets]
        return sets, scores

    def label_rule(
        self, round: int | None = None, threshold: float | None = None, evidence: str | None = None
    ) -> dict:
        """How `predict_labels` decides (`mlrelabel.relabel.label_sets.rule`): evidence, thresholds and their source."""
        from mlrelabel.relabel import label_sets

        return label_sets.rule(self, round, threshold, evidence)

    def _model(self, checkpoint: str):
        from mlrelabel.train import inference

        if checkpoint not in self._models:
            variables, step = self._restore(checkpoint)
            m = self.manifest
            self._models[checkpoint] = inference.Predictor.of_model(
                self._build_model(), variables, m['mean'], m['std'], self.batch_size, step
            )
        return self._models[checkpoint]

    def variables(self, round: int | None = None) -> dict:
        """`{'params', 'batch_stats'}` (numpy) of the model `predict` uses (the chosen round's, or `round`'s)."""
        import jax

        return jax.tree.map(np.asarray, self._model(self.round_info(round)['checkpoint']).variables)

    def step(self, round: int | None = None) -> int:
        """The training step of the checkpoint `predict` uses."""
        return self._model(self.round_info(round)['checkpoint']).step

    def _build_model(self):
        from mlrelabel.methods import common

        cfg = ml_collections.ConfigDict(
            {'model': self.manifest['model'], 'data': {'num_classes': self.num_classes}}
        )
        return common.build_model(cfg, self.num_classes)

    def _restore(self, checkpoint: str) -> tuple[dict, int]:
        """`({'params', 'batch_stats'}, step)` of the latest checkpoint in `checkpoint` (numpy arrays)."""
        if checkpoint in self._restored:
            return self._restored.pop(checkpoint)  # restored early for the class count; used once more
        from mlrelabel.train import inference
        from mlrelabel.train.checkpoint import assert_finite

        directory = os.path.join(self.workdir, checkpoint)
        state, step = inference.restore_latest(directory)
        if 'student' in state:  # MILe: the network the run returned (older runs: the student)
            state = state[self.manifest.get('network') or 'student']
        variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
        if self.manifest['model'].get('freeze_backbone', False):
            from mlrelabel.models.frozen import FrozenBackbone

            variables = FrozenBackbone.merge(variables)
        assert_finite(variables, f'{directory} (step {step})')
        return variables, step

    def _classes_from_checkpoint(self) -> dict:
        checkpoint = self.manifest['checkpoint']
        self._restored[checkpoint] = self._restore(checkpoint)
        variables = self._restored[checkpoint][0]
        c = int(np.shape(variables['params']['fc']['bias'])[0])
        return {'num_classes': c, 'class_names': [str(i) for i in range(c)]}

    def __repr__(self) -> str:
        rounds = (
            f', rounds={[r["round"] for r in self.rounds]}, chosen_round={self.chosen_round}'
            if self.rounds
            else ''
        )
        return f'Run({self.workdir!r}, method={self.method!r}, {self.num_classes} classes, head={self.head!r}{rounds})'


def run_config(config, workdir: str, **overrides) -> dict:
    """Runs a recipe in `workdir` (resuming what is there); returns the method's result dict.

    `config`: a ConfigDict, a recipe name ('mc_dropout', 'mc_dropout:smoke') or a config file path.
    `overrides`: fields to set, `train__epochs=3` for `config.train.epochs`; a dict value sets a subtree.
    """
    from mlrelabel import main
    from mlrelabel.config import recipes

    if isinstance(config, str):
        cfg = recipes.load(config)
    elif isinstance(config, ml_collections.ConfigDict):
        cfg = config.copy_and_resolve_references()  # the caller's config stays as it was
    else:
        cfg = ml_collections.ConfigDict(config)
    schema.complete(cfg)  # every schema field can be overridden, listed in the recipe or not
    for key, value in overrides.items():
        _override(cfg, key.replace('__', '.'), value)
    return main.run(cfg, workdir)


def _override(cfg, dotted: str, value) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _override(cfg, f'{dotted}.{k}', v)
        return
    *parents, leaf = dotted.split('.')
    node = cfg
    for i, name in enumerate(parents):
        if name not in node:
            raise ValueError(
                f'config.{".".join(parents[: i + 1])}: no such config field (override {dotted}={value!r})'
            )
        node = node[name]
    if leaf not in node:
        raise ValueError(f'config.{dotted}: no such config field')
    node[leaf] = value

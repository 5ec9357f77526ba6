"""Shared config builders: every `configs/<recipe>.py` starts from `base_config(variant)`.

One field per decision; `--config.<field>=<value>` overrides any of them from the command line. The
`smoke` variant shrinks data, model and schedule so that any recipe runs end to end in well under a minute
on a 2-core CPU (the tests run the smoke variant of every config).
"""

from __future__ import annotations

import ml_collections


def base_config(variant: str = '') -> ml_collections.ConfigDict:
    """Defaults for plain training on the built-in digit-scenes data."""
    c = ml_collections.ConfigDict()
    c.method = 'supervised'
    c.seed = 0
    # Compiled XLA programs are kept here and reused by reruns, resumed runs and later rounds ('' = no cache;
    # $JAX_COMPILATION_CACHE_DIR moves it). Results never depend on it; a resumed run may change it.
    c.compile_cache = '~/.cache/mlrelabel/xla'

    c.data = d = ml_collections.ConfigDict()
    d.source = 'digit_scenes'  # 'digit_scenes' | 'json' (image files + CS570 label files)
    d.num_classes = 0  # 0 = from the data (the label file's class list, folders, or the largest label + 1)
    d.seed = 0  # data composition seed (separate from the training seed)
    d.image_size = 0  # images are square [size, size, 3]; 0 = from the data (see mlrelabel/data/inspect.py)
    d.max_image_size = 0  # cap of the data-driven image size (0 = by the number of training images)
    # digit scenes: sizes, composition and which label is visible.
    d.num_train = 3000
    d.num_val = 1000
    d.num_test = 0  # 0 = no test split
    d.layout = 'scenes'  # 'scenes' (1-4 digits at random places) | 'grid' (3x3, MILe protocol)
    d.min_digits = 1
    d.max_digits = 4
    d.min_scale = 12  # digit side in pixels
    d.max_scale = 20
    d.visible = 'largest'  # visible single label: 'largest' digit | 'random' digit
    # What the run is given for validation: 'single' (the visible label alone, as users have it) | 'full'
    # (every digit: a user with multi-label validation labels). The hidden truth only ever scores a run.
    d.val_given = 'single'
    # digit scenes: train on the 'visible' single label, or on the 'full' hidden sets (the upper bound)
    d.train_labels = 'visible'
    # digit scenes: this fraction of the training images get a wrong given label (a class absent from the image)
    # instead of the visible one: label noise, to measure how a run and its review list find bad given labels.
    d.given_noise = 0.0
    # user data (source='json'): CS570 label files {"data": [{"img_path", "labels"}]}.
    d.train_json = ''
    d.val_json = ''
    d.root = ''  # resolves relative img_path values ('' = the label file's folder)
    d.loader_workers = 0  # >0: decode in this many grain worker processes (mp_prefetch; large JPEG datasets)
    d.loader_threads = 0  # batches each loader process builds at once in threads (0 = 16, grain's default)
    d.host_augment = False  # random-resized-crop + flip in the loader workers instead of on device
    # ImageNet (source='tfds' | 'folder'): see mlrelabel/data/imagenet.py.
    d.tfds_name = 'imagenet2012'
    d.tfds_data_dir = ''
    d.val_labels = ''  # folder source: flat val/ labels ('name wnid' lines) ('' = TFDS validation_labels.txt)
    d.real_json = ''  # ReaL label sets for the validation images (become the evaluation truth)
    d.synthetic = False  # smoke tests: generate a tiny ImageNet-layout folder when data.root is empty
    # annotation formats (source='annotation_folder' | 'attribute_csv' | 'partial_json'): data/formats.py.
    d.train_path = ''  # annotation folder / attribute CSV / partial JSON of the training split
    d.val_path = ''  # the same for validation ('' = hold out val_fraction of train_path)
    d.val_fraction = 0.2
    d.images_dir = ''  # attribute CSV: folder of the `filename`s ('' = <csv folder>/images)
    d.attribute_groups = ''  # attribute CSV: 'neck:7,sleeve_length:4' ('' = every column, counts from data)
    d.unlisted = 'negative'  # annotation folder: an image absent from <class>.txt is 'negative' | 'unknown'
    d.check_images = True  # open every image once; unreadable ones are skipped and counted
    d.allow_overlap = False  # True: images in both train and val (same path or bytes) warn, not stop
    d.mean, d.std = (), ()  # per-channel normalisation of [0, 1] pixels; () = measured on a training sample

    c.model = m = ml_collections.ConfigDict()
    # resnet18/34/50/101/152 | resnet_tiny | resnet_small | 'auto': resnet_tiny (small stem, stride 2) below
    # 96 px, resnet18 (ImageNet stem) above; the choice is printed and stored in config.json.
    m.name = 'auto'
    m.width = 0  # stem channels; 0 = the network's own (64 for torchvision's, 16 for the small presets)
    m.small_stem = True  # 3x3 stem without max-pool (small images); set by model.name='auto'
    m.stem_stride = 2  # 0 = the stem's own (1 small, 2 ImageNet); 2 quarters the cost at 40 px
    m.dropout_rate = 0.0
    m.dtype = 'float32'  # compute dtype: 'float32' | 'bfloat16' (params stay float32)
    # torchvision ResNet weights (a state_dict: .pth/.pt needs torch, .npz does not) to start from ('' = none);
    # every method; model.name must be the ResNet they belong to, the classifier is new when C differs.
    m.pretrained = ''

    c.train = t = ml_collections.ConfigDict()
    t.epochs = 10
    t.min_steps = 0  # > 0: epochs are raised so that training takes at least this many steps (small datasets)
    t.batch_size = 64
    # 'softmax_ce' | 'sigmoid_bce' | 'soft_ce', or a single-positive loss (mlrelabel/single_positive.py):
    # 'an' | 'an_ls' | 'wan' | 'epr' | 'em' | 'em_apl' | 'll_r' | 'll_ct' | 'll_cp'
    t.loss = 'softmax_ce'
    t.label_smoothing = 0.0  # softmax_ce only
    # Hyper-parameters of the single-positive losses (sigmoid head; each field lists the kinds using it).
    t.single_positive = ml_collections.ConfigDict(
        {
            'log_eps': 1e-5,  # every kind: L(q) = -log(q + log_eps); 0 = exact -log sigmoid(+-logits)
            'label_smoothing': 0.1,  # an_ls
            'gamma': 0.0,  # wan: weight of unobserved entries (0 = 1/(C-1))
            'expected_positives': 0.0,  # epr: expected positive classes per image (required for epr)
            'alpha': 0.1,  # em, em_apl: weight of the entropy of unobserved entries
            'beta': 1.0,  # em_apl: weight of the soft pseudo-negatives
            'warmup_epochs': 3,  # em_apl: pseudo-labels are chosen after every epoch from this one (1-based)
            'neg_proportion': 0.9,  # em_apl: share of each class's unobserved entries pseudo-labelled in all
            'rejection_rate': 0.0,  # ll_*: rejection rate of the first epoch (0 = none, as in the paper)
            'delta_rel': 0.002,  # ll_*: the rejection rate grows by this each epoch (ll_cp: corrected per batch)
        }
    )
    # random-resized-crop + flip on device; digits are not mirror-symmetric, so no flips here. `mixup` > 0: blend
    # each example with its neighbour, lam ~ Beta(mixup, mixup) (losses of soft targets only; BENCHMARKS.md:
    # it lifted round 0 on small photo sets but not the final labels reliably, so it is off by default).
    # `zoom_out` > 0: with probability `zoom_out_prob`, shrink the crop by a side factor U(zoom_out, 1) onto a
    # mean-coloured canvas (`augment.zoom_out`), so that single-label models also meet their classes small.
    t.augment = ml_collections.ConfigDict(
        {
            'enabled': True,
            'scale': (0.6, 1.0),
            'ratio': (3 / 4, 4 / 3),
            'flip': False,
            'mixup': 0.0,
            'zoom_out': 0.0,
            'zoom_out_prob': 0.5,
        }
    )
    t.checkpoint_every_steps = 50  # plus one at every epoch end ...
    # ... but no sooner than this many seconds after the last one (each save blocks for ~0.4 s: saving every
    # 4-second digits epoch cost 50 s of the main job); a phase's last step always saves. 0 = every time.
    t.checkpoint_every_seconds = 30.0
    t.log_every_steps = 10
    t.eval_every_epochs = 1  # 0: only at the end of each training phase

    c.optim = o = ml_collections.ConfigDict()
    o.name = 'adamw'  # 'sgd' | 'adamw'
    o.learning_rate = 3e-3
    o.lr_base_batch = 0  # >0: lr scaled by batch_size / lr_base_batch
    o.momentum = 0.9
    o.nesterov = True
    o.weight_decay = 0.05
    o.warmup_epochs = 1.0
    o.schedule = 'cosine'  # 'cosine' | 'constant'
    o.grad_clip = 0.0

    c.eval = e = ml_collections.ConfigDict()
    e.batch_size = 256
    e.threshold = 0.5
    e.imagenet_sets = ''  # extra TFDS evaluation sets after training: any of 'real,multilabel,v2' ('' = none)  # predicted set = argmax ∪ {p > threshold}

    c.parallel = p = ml_collections.ConfigDict()
    p.num_devices = 0  # 0 = all devices
    # A machine without an accelerator is split into this many JAX CPU devices, and batches shard over them
    # as over GPUs: XLA keeps both cores of a laptop busier with small convolutions (2 cores: a training step
    # 1.4x, the relabel pass 1.4x faster with 2 than with 1; 4 is no faster for training). Batch sizes must be
    # multiples of it. 0 = JAX's own (1 device).
    p.cpu_devices = 2
    p.coordinator_address = ''  # multi-host: host:port of process 0
    p.num_processes = 1
    p.process_id = 0

    c.report = r = ml_collections.ConfigDict()
    r.num_examples = 16  # images drawn in the examples PNG

    if variant == 'smoke':
        apply_smoke(c)
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c


def apply_smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks a config in place so the run ends in seconds on CPU."""
    c.train.min_steps = 0
    c.data.num_train = 256
    c.data.num_val = 128
    c.data.num_test = 0
    c.data.image_size = 32
    c.data.min_scale = 10
    c.data.max_scale = 16
    c.model.name = 'resnet_tiny'
    c.model.width = 8
    c.train.epochs = 2
    c.train.batch_size = 32
    c.train.checkpoint_every_steps = 4
    c.train.checkpoint_every_seconds = 0.0  # tests stop and resume at these steps
    c.train.log_every_steps = 4
    c.eval.batch_size = 64
    c.report.num_examples = 8


def imagenet_data(c) -> None:
    """The ImageNet data fields (sources 'tfds' | 'folder' | 'json'), in place."""
    d = c.data
    d.source = 'tfds'
    d.num_classes = 1000
    d.image_size = 224
    d.num_train = 0  # > 0: train on a seeded subset of that many images
    d.num_val = 0
    d.tfds_name = 'imagenet2012'
    d.tfds_data_dir = ''  # '' = TFDS's default data folder
    d.val_labels = ''  # folder: label file of a flat val/ folder ('' = TFDS's validation_labels.txt)
    d.real_json = ''  # ReaL labels json for val truth ('' = TFDS imagenet2012_real when prepared)
    d.synthetic = False  # folder with an empty root: generate a tiny one (smoke runs)
    d.check_images = True
    d.mean = (0.485, 0.456, 0.406)
    d.std = (0.229, 0.224, 0.225)


def resnet50_imagenet(c) -> None:
    """ResNet-50 at 224 px on ImageNet with the standard large-batch SGD recipe, in place (Goyal et al. 2017,
    "Accurate, Large Minibatch SGD": Nesterov momentum, lr 0.1 per 256 images, 5 warm-up epochs, cosine,
    weight decay 1e-4, bf16 compute). Recipes override what differs (epochs, batch, loss, schedule)."""
    imagenet_data(c)
    m = c.model
    m.name = 'resnet50'
    m.width = 64
    m.small_stem = False
    m.stem_stride = 0
    m.dtype = 'bfloat16'
    t = c.train
    t.epochs = 90
    t.batch_size = 1024
    t.augment.scale = (0.08, 1.0)
    t.augment.ratio = (3 / 4, 4 / 3)
    t.augment.flip = True
    t.checkpoint_every_steps = 1000
    t.log_every_steps = 100
    o = c.optim
    o.name = 'sgd'
    o.learning_rate = 0.1
    o.lr_base_batch = 256
    o.momentum = 0.9
    o.nesterov = True
    o.weight_decay = 1e-4
    o.warmup_epochs = 5.0
    o.schedule = 'cosine'
    c.eval.batch_size = 1024


def relabel_config(variant: str = '', confidence: str = 'mc_dropout') -> ml_collections.ConfigDict:
    """The Crop → Confidence → Label loop on top of `base_config` (CS570 multi-labeling ImageNet)."""
    c = base_config('')
    c.method = 'relabel'
    c.model.dropout_rate = 0.1  # all three share the model; MC dropout needs some
    c.train.epochs = 20  # round 0; later rounds warm-start for relabel.epochs
    # Small datasets get more epochs: round 0 >= 2400 steps, fresh rounds >= relabel.fresh_min_steps = 1200, later
    # rounds >= relabel.min_steps = 300 (digits: 53, 27 and 7 epochs). Round 0's model alone scores round 1's
    # crops: 1,200 steps instead of 920 lifted the final labels' F1 in each of 3 seeds (+0.003 to +0.009), and
    # 2,400 instead of 1,200 lifted it on 3,000 photo scenes in each of 5 seeds (0.882 -> 0.920 on average, the
    # worst seed 0.846 -> 0.912), +0.007 on the digit scenes, a tie on the denser composition; 7-epoch rounds
    # matched 10-epoch ones (BENCHMARKS.md).
    c.train.min_steps = 2400
    # Validation once per round, at its end: the round's row and the stop rules read only that (on the GPU,
    # label quality over 3 seeds did not change without per-epoch validation; BENCHMARKS.md).
    c.train.eval_every_epochs = 0
    # () = by the data (`data.inspect`): photos train on crops as small as the smallest scored window, else 0.6-1
    c.train.augment.scale = ()

    c.relabel = r = ml_collections.ConfigDict()
    r.confidence = confidence  # 'naive' | 'mc_dropout' | 'mc_dropout_full' | 'mc_perturbation'
    r.num_samples = 16 if confidence != 'naive' else 1  # T Monte-Carlo samples per crop
    r.perturbation = ml_collections.ConfigDict(
        {'flip': 0.0, 'scale': 0.1, 'shift': 0.1, 'brightness': 0.1, 'contrast': 0.1, 'noise': 0.05}
    )
    r.crops = ml_collections.ConfigDict(
        {
            'kind': 'grid',  # 'grid' | 'random' | 'fixed' | 'full' | 'proposals'
            'num_crops': 8,  # K per image for random / fixed / proposals (grid: all windows)
            'scale': (0.15, 0.5),  # random: area fraction range
            'ratio': (3 / 4, 4 / 3),
            'size': (0.5, 0.5),  # fixed: box height, width fractions
            # grid: window sides as fractions of the image side; objects of a quarter to a half of the side fit
            # one window whole at any image size.
            'grid_scales': (1.0, 0.6, 0.45),
            # grid: windows of one scale overlap by this fraction of their side. 0.67 (42 windows) rather than
            # 0.5 (26): more windows hold each object whole and near its centre; label F1 +0.001 to +0.013 on
            # the digit scenes and -0.001 to +0.007 on the denser composition (3 seeds each, 6 rounds), at 1.6x
            # the relabel pass (BENCHMARKS.md).
            'overlap': 0.67,
            'proposal_box_size': 0.45,  # proposals: box side around each class-map peak
            'include_full_image': True,  # the whole image is always one of the crops
            # Every crop is resized to size_fraction * data.image_size (or crop_size px when > 0): whole images
            # shrink a little and small windows grow, keeping objects near the scale the model was trained on.
            'size_fraction': 0.7,
            'crop_size': 0,
        }
    )
    # Each class's evidence from an image's crops: 'top2' (the mean of its two best crops), 'top<k>', 'max', 'mean'.
    # An object that fits one window whole also mostly fills the overlapping windows beside it; a confusion tends to
    # light up one window alone. 'top2' rather than 'max': label F1 +0.004 to +0.008 on the digit scenes in each of
    # 3 seeds and -0.002 to +0.004 on the denser composition (BENCHMARKS.md); 'top3' and 'top4' lost there.
    r.aggregate = 'top2'
    r.evidence = (
        'mean'  # 'mean': each image's log-odds averaged over all rounds so far | 'last': this round's
    )
    # How labels are assigned from the evidence. 'gmm' (per-class 2-component mixtures on log-odds; the default),
    # 'threshold' (one global probability), 'topk'; 'calibrated' needs multi-label validation labels.
    r.assign = 'gmm'
    r.threshold = 0.5  # 'threshold': global probability threshold (any value in (0, 1): not capped)
    r.topk = 2  # 'topk': labels per image
    r.min_conf = 0.0  # 'topk': ignore classes below this probability
    # 'gmm': posterior of the high component needed for a label. 0.9 rather than 0.97, and a positive floor at
    # the 0.05 quantile rather than 0.1: on the stored evidence of 4-round runs the final labels' F1 rose in both
    # seeds tried of both digit compositions (+0.003 to +0.004 digits, +0.009 to +0.011 json_digits), then in all
    # 3 seeds of each through the rounds (+0.002 to +0.003, +0.008 to +0.011; BENCHMARKS.md). The extra false
    # additions this allows on one-object images are what the guard's additions check catches
    # (`select.addition_precision` compares additions with the known positives' lower quartile: keep
    # `positive_floor` below 0.25).
    r.gmm_min_posterior = 0.9
    r.gmm_max_samples = 20000  # 'gmm': images sampled per class fit
    r.gmm_min_separation = (
        1.0  # 'gmm': a class whose modes overlap more (Ashman's D below this) adds no label
    )
    # 'gmm': an added label needs at least the evidence of the weakest `positive_floor` quantile of the held-out
    # images given that class (known positives the model never trained on); 0 = no floor.
    r.positive_floor = 0.05
    r.uncertainty = 'std'  # filter measure: 'std' (per class) | 'mutual_information' | 'entropy'
    r.max_uncertainty = 0.0  # drop assignments above this uncertainty (0 = no filter)
    r.keep_given = True  # the given label is always kept
    r.max_labels = 0  # cap on labels per image (0 = no cap)
    r.exclusive_groups = True  # attribute groups (attribute CSV): at most one value per group, given first
    r.record_topk = 20  # evidence kept per image: the top-k classes (0 = all C)
    r.batch_size = 64  # images per relabel batch (multiple of the device count)
    r.save_every_batches = 50  # relabel progress is checkpointed this often
    r.loss = 'sigmoid_bce'  # loss of the rounds after round 0 (multi-hot targets)
    r.warm_start = True  # start round k from round k-1's weights (else a fresh init)
    # Rounds 1..fresh_rounds start from an init of their own and train as long as round 0 (train.epochs): a
    # model that shares neither round 0's start nor its labels errs elsewhere, so the evidence averaged over
    # rounds gains more from it than from a warm-started round. Two fresh rounds (then warm ones), on top of
    # 'top2': label F1 +0.007 on the digit scenes and +0.010 to +0.022 on the denser composition in
    # each of 3 seeds, for about 40 s more of a 2-core CPU (BENCHMARKS.md). 0 = every round warm-starts.
    # Round 0 trains this many models on the given labels, each from an init and data order of its own; round 1's
    # evidence is their mean. 0 = by the data (`data.inspect`): three for photos up to 20,000 training images,
    # else one. On 3,000 photo scenes with small training crops (seed 1) three lifted round 1's labels from 0.913
    # to 0.929 and round 2's from 0.930 to 0.934, for twice round 0's time more (BENCHMARKS.md).
    r.round0_models = 0
    # ... but only when round 0's first model reached this validation top-1 on the given labels (else one model,
    # with a note): on 1,200 photo scenes a network from scratch reached 0.10-0.34 and its crop evidence could not
    # be trusted (the guard kept the given labels); on 3,000 it reached 0.69-0.74. 0 = always.
    r.round0_models_min_top1 = 0.5
    # A model you already have as round 0 instead of training one: a finished run's work directory, one of its
    # round folders (W/round_0), an Orbax checkpoint folder, or torchvision weights (.pth/.npz or
    # 'torchvision:<name>'). It scores round 1's crops and the fresh rounds fine-tune from it. '' = train round 0.
    r.round0_checkpoint = ''
    r.decisions = ''  # review decisions (mlrelabel-review): accepted labels kept, rejected never added in a round
    r.fresh_rounds = 2
    r.fresh_epochs = 0  # epochs of a fresh round (0 = train.epochs, as round 0); set from fresh_min_steps
    # > 0: a fresh round trains at least this many steps, and at least train.epochs (its epochs set from the data's
    # size). Half of round 0's on small data: the longer round 0 paid off in the labels it makes; fresh rounds
    # average into the evidence with the others.
    r.fresh_min_steps = 1200
    # Round 0 that ends under-trained (`select.underfit_note`: its last epoch's training loss above 40 % of its
    # first's, as when a network from scratch sits at chance on photos for half of round 0) trains `train.epochs`
    # more from where it stopped, once: its model scores round 1's crops. On 3,000 photo scenes such a round 0
    # reached validation top-1 0.455 where the same data and seed leaving chance in time reached 0.718
    # (BENCHMARKS.md). It never fires on the digit compositions (their rounds 0 end at 12-21 %).
    r.extend_underfit_round0 = True
    r.epochs = 6  # epochs of rounds >= 1 (0 = train.epochs); raised to relabel.min_steps steps
    r.min_steps = 300  # > 0: relabel rounds train at least this many steps (small datasets)
    # Which round's labels become the output, and when to stop, decided without multi-label truth
    # (mlrelabel/relabel/select.py): among the relabeled rounds that the guard does not flag, `metric` chooses;
    # none passing keeps the given labels. With `control`, round 1 is also trained on the given labels (same
    # start, data order and keys) and its labels must beat that control on `gate_metric` by `min_delta`: an
    # A/B test of the labels. It is off by default: on data whose given label is the most salient object,
    # single-label validation metrics favour single-label training whatever the new labels are worth.
    r.control = False
    r.gate_metric = 'val_top1'
    r.min_delta = 0.0
    # The held-out mixture F1 (`select.heldout_mixture_f1`): the F1 the validation images' labels should have if the
    # mixtures fitted to the training evidence are right. It rose with the labels' F1 in every round on both digit
    # compositions, where the PU score ('heldout_pu_score') fell with every correct label added (BENCHMARKS.md).
    r.metric = 'heldout_mixture_f1'
    # The rounds stop only once `metric` stays more than this fraction below its best (held-out noise is a few
    # percent: a dip of 3 % at round 2 came before the best rounds on the denser digit composition) ...
    r.tolerance = 0.05
    # ... and the output is the round with the best `metric`, or the latest within this fraction of it. 0: on
    # photo scenes whose labels overshoot in late rounds the best metric kept +0.009 F1 (3 seeds) that the
    # latest-within-5 % rule gave away; on the digit compositions (21 runs) they differ by 0.0003 on average (BENCHMARKS.md).
    r.choose_tolerance = 0.0
    # Round 1's metric comes from round 0's models alone and ran high: it is the output over a later round only
    # with a lead of more than this fraction. Replayed on 34 runs: the output's loss against each run's best round
    # -0.0025 -> -0.0014 F1 on average, worst -0.028 -> -0.007, no run worse (BENCHMARKS.md). 0 = no margin.
    r.round1_margin = 0.02
    r.patience = 2  # stop when `metric` stays more than `tolerance` below its best for this many rounds ...
    r.stable_fraction = 0.01  # ... or when fewer than this fraction of the images changed labels
    # Relabel rounds after round 0. Six rather than four: on the denser digit composition the labels gained in
    # rounds 5 and 6 in every seed (+0.005 to +0.010 F1), on the digit scenes they lost 0.001 to 0.003, and the
    # held-out metric chose the last round on both; the stop rules above end the rounds earlier when they stall.
    r.max_rounds = 6
    # review.csv / review.png: the additions and suspect given labels, ranked by the run's own evidence.
    r.review = True

    if variant == 'smoke':
        apply_smoke(c)
        r.extend_underfit_round0 = False  # 2 smoke epochs are under-trained by design
        r.max_rounds = 1
        r.epochs = 1
        r.min_steps = 0
        r.fresh_min_steps = 0
        r.round0_models = 2  # the path of several round-0 models, at less cost
        r.round0_models_min_top1 = 0.0  # whatever 2 smoke epochs learn
        r.num_samples = min(r.num_samples, 4)
        r.crops.num_crops = 4
        r.crops.grid_scales = (1.0, 0.6)
        r.crops.overlap = 0.5  # 10 windows: the tests' relabel passes stay short
        r.batch_size = 32
        r.save_every_batches = 2
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c

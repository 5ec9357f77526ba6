"""`mlrelabel-review WORKDIR`: review a relabel run's proposals in the browser, then apply the decisions.

  mlrelabel-review WORKDIR [--port=N] [--no-serve] [--no-boxes]
      writes WORKDIR/review/index.html (+ img/) and serves it on 127.0.0.1 with a random token in the URL,
      printed on its own line; decisions go to WORKDIR/review/decisions.jsonl. --no-serve writes the page only
      (open it from file://; decisions stay in the browser and are exported as a decisions file).
  mlrelabel-review WORKDIR --apply [--decisions=FILE] [--out=FILE] [--accepted-only] [--force]
      writes the curated labels (default WORKDIR/labels.curated.json, the format of the run's labels.json):
      accepted proposals applied, rejected ones undone, undecided ones as the run proposed them
      (--accepted-only: additions only when accepted). The run's own files are never written.

Exit status 2, with one message, for a problem with the run, the decisions file or the output path.
"""

from __future__ import annotations

import argparse
import os
import sys

from mlrelabel import decisions
from mlrelabel.errors import DataError

RUN_FILES = (
    'labels.json',
    'review.json',
    'review.csv',
    'run.json',
    'config.json',
    'summary.json',
    'thresholds.json',
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='mlrelabel-review', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('workdir', help='a finished relabel run')
    p.add_argument('--port', type=int, default=0, help='port on 127.0.0.1 (0: a free one)')
    p.add_argument('--no-serve', action='store_true', help='write the page only (open it from file://)')
    p.add_argument('--no-boxes', action='store_true', help='skip finding each proposal\'s crop box')
    p.add_argument('--apply', action='store_true', help='write curated labels from the decisions')
    p.add_argument('--decisions', help='decisions file (default WORKDIR/review/decisions.jsonl)')
    p.add_argument('--out', help='curated label file (default WORKDIR/labels.curated.json)')
    p.add_argument('--accepted-only', action='store_true', help='keep only accepted additions')
    p.add_argument('--force', action='store_true', help='overwrite an existing --out')
    return p


def apply(args) -> str:
    """Writes the curated labels; returns their path. Raises DataError (nothing written) on any problem."""
    from mlrelabel.data.label_table import LabelTable
    from mlrelabel.data.labels import write_label_file
    from mlrelabel.review import build

    workdir = args.workdir
    out = os.path.abspath(args.out or os.path.join(workdir, 'labels.curated.json'))
    if out in {os.path.abspath(os.path.join(workdir, name)) for name in RUN_FILES}:
        raise DataError(f'--out={args.out}: that is one of the run\'s own files; choose another path')
    if os.path.exists(out) and not args.force:
        raise DataError(f'--out={out}: exists; pass --force to overwrite it')
    source = args.decisions or os.path.join(build.review_dir(workdir), 'decisions.jsonl')
    if not os.path.isfile(source):
        raise DataError(f'--decisions={source}: no such file')
    paths, lists, names = build.run_labels(workdir)
    rows = build.run_rows(workdir)
    standing = decisions.read_decisions(source, paths, len(names))
    curated = decisions.curate(lists, standing, rows, paths, args.accepted_only)
    write_label_file(out, paths, LabelTable.from_lists(curated, len(names)), names)
    return out


def serve(args) -> None:
    from mlrelabel.review import build
    from mlrelabel.review.server import ReviewServer

    page = build.build_page(args.workdir, boxes=not args.no_boxes)
    if args.no_serve:
        print(f'file://{os.path.abspath(page)}', flush=True)
        return
    server = ReviewServer(build.review_dir(args.workdir), args.port)
    print(server.url, flush=True)
    print(f'decisions → {server.decisions_path}  (Ctrl-C stops the server)', file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if not os.path.isdir(args.workdir):
            raise DataError(f'{args.workdir}: no such run directory')
        if args.apply:
            print(apply(args))
        else:
            serve(args)
    except DataError as e:
        print(f'mlrelabel-review: {e}', file=sys.stderr)
        return 2
    except OSError as e:
        print(f'mlrelabel-review: {e}', file=sys.stderr)
        return 2
    return 0


def cli():
    """The `mlrelabel-review` console script (the same as `python -m mlrelabel.review`)."""
    raise SystemExit(main())

"""`python -m mlrelabel.review WORKDIR`: the same as the `mlrelabel-review` command."""

from mlrelabel.review.cli import cli

if __name__ == '__main__':
    cli()

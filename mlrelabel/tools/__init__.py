"""Command-line tools that convert or inspect data (`python -m mlrelabel.tools.<name>`)."""

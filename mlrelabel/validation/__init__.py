"""One validation pass over a whole config, before any work: `validate_config(config)`.

Every problem is collected and reported at once in a `ConfigError`, one per line, each naming the dotted field,
its value and what is allowed. The schema is declarative (`schema.SCHEMA`: dotted field → allowed values,
range or type, one line per field) plus cross-field rules (`rules.RULES`: label files need the json source,
the image size must fit the model, batch sizes must split over the devices, ...). Nothing here imports JAX,
so `main` validates before anything heavy is loaded and before the work directory is claimed.
"""

from __future__ import annotations

from mlrelabel.config.schema import MISSING, SCHEMA, get
from mlrelabel.errors import ConfigError
from mlrelabel.validation.rules import RULES, available_methods

__all__ = ['RULES', 'SCHEMA', 'available_methods', 'problems', 'validate_config']


def problems(config, devices: int | None = None) -> list[str]:
    """Every problem of `config`: the schema's field checks, then the cross-field rules. With `devices` (the
    number of visible accelerators), the device count and the batch sizes are checked too."""
    out = []
    for field, check in SCHEMA.items():
        value = get(config, field)
        if value is not MISSING:
            problem = check.problem(field, value)
            if problem:
                out.append(problem)
    for rule in RULES:
        try:
            out += rule(config, devices)
        except (TypeError, ValueError, AttributeError):  # a wrongly typed value: the schema reports it
            pass
    return out


def validate_config(config, devices: int | None = None) -> None:
    """Raises `ConfigError` listing every problem of `config` (see `problems`); returns None when there is none."""
    found = problems(config, devices)
    if found:
        raise ConfigError(found)

"""YAML parsed by libyaml where PyYAML has it: the pure-Python parser was
about 5 % of a suite run's Python under emulation (the requirements, the
lab file, the algorithm tables). Same safe subset, same errors
(yaml.YAMLError with the line and column)."""
from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str):
    return yaml.load(text, Loader=_LOADER)

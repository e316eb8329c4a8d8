"""YAML parsed by libyaml where PyYAML has it: the pure-Python parser cost
about a CPU-second per suite run under emulation (the requirements, the
lab file, the algorithm tables), libyaml a tenth of that. Same safe subset,
same errors (yaml.YAMLError with the line and column)."""
from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str):
    return yaml.load(text, Loader=_LOADER)

"""The kant-slurm config: one strict schema, defaults shipped in the package.

``load_config(path)`` reads a YAML or TOML file and merges it over
``kant_slurm/data/default-config.yaml``. The result is a tree of frozen dataclasses
(:class:`KantConfig`). Strict, as Slurm is with slurm.conf: an unknown key, a key given twice,
a value of the wrong type or out of range, or a file that is not UTF-8 is a
:class:`~kant_slurm.errors.ConfigError` that names the file, the line (YAML through the composed
node tree's marks; TOML from its table headers and ``key =`` lines, else the parent's line), the
dotted key (``backfill.reservations``) and what is allowed. Validation goes on past the first
error: the ConfigError holds every one, one per line, in file order.

Rules between keys are :data:`CROSS_FIELD_RULES`; the ones marked ``steering`` (they only matter
where kant steers a live Slurm) are checked with ``steering=True`` (``kant-slurm config check``).

The schema is declared once, as dataclasses; each field's ``metadata`` carries its bounds or
allowed values and a one-line help text (``kant-slurm config show`` prints them). Adding a key is
adding a field with a default in :mod:`.schema` and in the shipped YAML.

The parts:

- :mod:`.schema`: the dataclasses with their field metadata, and :func:`describe_schema`;
- :mod:`.parse`: reading a YAML or TOML file with the line of every key;
- :mod:`.load`: validation against the schema, and :func:`load_config`;
- :mod:`.rules`: the cross-field rules and :func:`inference_advice`.
"""

from __future__ import annotations

from .load import (
    CONFIG_ENV,
    config_from_dict,
    deep_merge,
    default_config_text,
    load_config,
    read_config_file,
)
from .parse import ConfigFile, parse_config_file
from .rules import CROSS_FIELD_RULES, CrossFieldRule, inference_advice
from .schema import (
    ActuatorConfig,
    BackfillConfig,
    ClassesConfig,
    EstimatorConfig,
    InferenceConfig,
    InferenceZoneConfig,
    KantConfig,
    KeyPath,
    PlacementConfig,
    PreemptionConfig,
    QuotaConfig,
    WeightsConfig,
    describe_schema,
)

__all__ = [
    "CONFIG_ENV",
    "CROSS_FIELD_RULES",
    "ActuatorConfig",
    "BackfillConfig",
    "ClassesConfig",
    "ConfigFile",
    "CrossFieldRule",
    "EstimatorConfig",
    "InferenceConfig",
    "InferenceZoneConfig",
    "KantConfig",
    "KeyPath",
    "PlacementConfig",
    "PreemptionConfig",
    "QuotaConfig",
    "WeightsConfig",
    "config_from_dict",
    "deep_merge",
    "default_config_text",
    "describe_schema",
    "inference_advice",
    "load_config",
    "parse_config_file",
    "read_config_file",
]

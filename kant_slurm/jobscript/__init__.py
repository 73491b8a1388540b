"""Job-script toolkit: sbatch templates with declared parameters, rendering, submission.

``render(name, layers)`` gives the script text; ``submit(script, ...)`` hands it to sbatch.
Every value reaching the script is quoted (quoting.py); every template declares its parameters
in a sidecar file (params.py).
"""

from .params import ParamSpec, TemplateSpec, format_duration, parse_duration, parse_set
from .render import Template, find_template, kant_tag, list_templates, load_values_file, render
from .submit import sbatch_command, submit

__all__ = [
    "ParamSpec",
    "Template",
    "TemplateSpec",
    "find_template",
    "format_duration",
    "kant_tag",
    "list_templates",
    "load_values_file",
    "parse_duration",
    "parse_set",
    "render",
    "sbatch_command",
    "submit",
]

"""Find, load and render sbatch templates.

A template is ``NAME.sbatch.j2`` plus its parameter sidecar ``NAME.yaml`` (see params.py). The
bundled ones ship inside the package (``kant_slurm/data/templates``, a link to the repository's
top-level ``templates/``); a TEMPLATE argument that is a path to a ``.sbatch.j2`` file loads a
site's own template the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from ..errors import TemplateError
from .params import TemplateSpec, format_duration, parse_spec, resolve_values
from .quoting import FILTERS, finalize

log = logging.getLogger(__name__)

SUFFIX = ".sbatch.j2"

WORKLOADS = ("training", "inference", "batch")


def bundled_dir() -> Path:
    """The directory of the templates shipped with the package."""
    return Path(str(resources.files("kant_slurm") / "data" / "templates"))


@dataclass(frozen=True)
class Template:
    """A loadable template: its jinja source file and its declared parameters."""

    name: str
    path: Path
    spec: TemplateSpec


def _load(path: Path) -> Template:
    name = path.name[: -len(SUFFIX)]
    sidecar = path.with_name(name + ".yaml")
    if not sidecar.is_file():
        raise TemplateError(f"{path}: no parameter file {sidecar.name} beside it")
    try:
        data = yaml.safe_load(sidecar.read_text())
    except yaml.YAMLError as exc:
        raise TemplateError(f"{sidecar}: not valid YAML: {exc}") from None
    return Template(name=name, path=path, spec=parse_spec(name, data, str(sidecar)))


def list_templates(directory: Path | None = None) -> list[Template]:
    """Every template in ``directory`` (default: the bundled ones), by name."""
    directory = directory or bundled_dir()
    if not directory.is_dir():
        raise TemplateError(
            f"template directory {directory} does not exist; "
            "reinstall kant-slurm (its package data is missing)"
        )
    return [_load(p) for p in sorted(directory.glob("*" + SUFFIX))]


def find_template(name_or_path: str) -> Template:
    """A bundled template by name, or a site template by path to its ``.sbatch.j2`` file."""
    if name_or_path.endswith(SUFFIX) or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file() or not path.name.endswith(SUFFIX):
            raise TemplateError(f"template file {path} not found (expected NAME{SUFFIX})")
        return _load(path)
    path = bundled_dir() / (name_or_path + SUFFIX)
    if not path.is_file():
        known = ", ".join(t.name for t in list_templates()) or "(none)"
        raise TemplateError(f"unknown template {name_or_path!r}; known templates: {known}")
    return _load(path)


def kant_tag(workload: str, service: str | None = None, est_seconds: int | None = None) -> str:
    """The engine's classification tag: ``kant:workload=W;service=S;est=SECONDS``.

    The same format job_submit.lua writes to the admin comment and
    ``kant_slurm.formats.tags.parse_kant_tag`` reads; absent parts are left out.
    """
    if workload not in WORKLOADS:
        raise TemplateError(f"workload {workload!r} is not one of {', '.join(WORKLOADS)}")
    parts = [f"workload={workload}"]
    if service:
        parts.append(f"service={service}")
    if est_seconds is not None and est_seconds > 0:
        parts.append(f"est={int(est_seconds)}")
    return "kant:" + ";".join(parts)


def _environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,  # a typo in a template is an error, not ""
        finalize=finalize,  # every {{ }} is shell-quoted unless a filter quoted it already
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # bash's ${#array[@]} would open a jinja comment: templates comment with <# ... #>.
        comment_start_string="<#",
        comment_end_string="#>",
    )
    env.filters.update(FILTERS)
    env.filters["duration"] = lambda s: FILTERS["sbatch"](format_duration(s))
    env.globals["kant_tag"] = kant_tag
    return env


def render(template: Template | str, layers: list[tuple[str, Mapping[str, Any]]]) -> str:
    """The job script for ``template`` with the given value layers (see ``resolve_values``)."""
    if isinstance(template, str):
        template = find_template(template)
    values = resolve_values(template.spec, layers)
    env = _environment(template.path.parent)
    try:
        text = env.get_template(template.path.name).render(**values, template_name=template.name)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{template.path}: {exc}") from None
    log.debug("rendered %s (%d bytes)", template.name, len(text))
    return text


def load_values_file(path: str) -> dict[str, Any]:
    """The mapping in a ``--values`` YAML file (an error names the file when it is not one)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise TemplateError(f"--values {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"--values {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TemplateError(f"--values {path}: expected a mapping of parameter: value")
    return data

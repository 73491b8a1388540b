"""The kant tag that job_submit.lua writes into a job's admin comment.

Format: ``kant:workload=inference;service=NAME;est=SECONDS;sla=SECONDS;ckpt=SECONDS`` (every
field optional but ``workload``; order free). The tag is how the engine learns a job's class,
service, runtime estimate, start-time SLA (inference) and checkpoint interval (training)
without trusting the free-text user comment.
"""

from __future__ import annotations

import re

from ..errors import InputError

TAG_PREFIX = "kant:"
WORKLOADS = ("training", "inference", "batch")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KNOWN = ("workload", "service", "est", "sla", "ckpt")


def _seconds(field: str, value: str, text: str) -> int:
    if not value.isdigit():
        raise InputError(
            f"kant tag {text!r}: field {field}={value!r} is not a whole number of seconds"
        )
    return int(value)


def parse_kant_tag(text: str | None) -> dict:
    """Parse a kant tag into ``{"workload", "service", "est", "sla", "ckpt"}`` (absent fields
    left out; the last three in seconds).

    Text without the ``kant:`` prefix (an ordinary admin comment) gives ``{}``. A malformed tag
    raises :class:`InputError` naming the bad field and the expected form.
    """
    if not text:
        return {}
    text = text.strip()
    # The tag may follow other admin text on its own line or after a space.
    start = text.find(TAG_PREFIX)
    if start < 0:
        return {}
    rest = text[start + len(TAG_PREFIX) :]
    body = rest.splitlines()[0].strip() if rest.strip() else ""
    if not body:
        raise InputError(
            f"kant tag {text!r}: empty; expected kant:workload=training|inference|batch;..."
        )
    out: dict = {}
    for part in body.split(";"):
        if not part:
            continue
        if "=" not in part:
            raise InputError(f"kant tag {text!r}: field {part!r} has no '='; expected key=value")
        key, value = part.split("=", 1)
        key = key.strip()
        value = value.strip()
        if key not in _KNOWN:
            raise InputError(
                f"kant tag {text!r}: unknown field {key!r}; expected one of {', '.join(_KNOWN)}"
            )
        if key in out:
            raise InputError(f"kant tag {text!r}: field {key!r} given twice")
        if key == "workload":
            if value not in WORKLOADS:
                raise InputError(
                    f"kant tag {text!r}: field workload={value!r}; expected one of "
                    f"{', '.join(WORKLOADS)}"
                )
            out[key] = value
        elif key == "service":
            if not _SERVICE.match(value):
                raise InputError(
                    f"kant tag {text!r}: field service={value!r}; expected 1-64 letters, "
                    "digits, '.', '_' or '-'"
                )
            out[key] = value
        else:
            out[key] = _seconds(key, value, text)
    if "workload" not in out:
        raise InputError(
            f"kant tag {text!r}: field workload is missing; expected "
            "workload=training|inference|batch"
        )
    return out

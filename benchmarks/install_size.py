#!/usr/bin/env python
"""What each install role costs on disk: a fresh venv per role, this checkout pip-installed
into it (not editable), its size measured.

  python benchmarks/install_size.py                                  # all roles, Markdown out
  python benchmarks/install_size.py --out benchmarks/results/install-size.md \\
      --json benchmarks/results/install-size.json
  python benchmarks/install_size.py --roles base --keep              # one role, venv kept

Roles: ``base`` (``pip install .``: the daemon, the exporter, the reports and the CLI), ``sim``
(``.[sim]``, numba), ``plots`` (``.[plots]``, matplotlib) and ``sim+plots`` (``.[sim,plots]``).
Each venv is made by ``python -m venv`` with the interpreter running this script, so it has
that Python's own pip and setuptools, and the install runs with that pip, from the package
index pip is configured with, as a user's would. A bare venv (nothing installed) is measured
too, so that each role's size splits into the venv's own part and what the install added.

The source installed is a copy of the working tree (git's tracked and untracked, not ignored
files), so a stale ``build/`` of the checkout cannot leak into the wheel and the checkout gets
no ``build/`` or ``*.egg-info`` of the run.

Sizes are MiB (2^20 bytes) of disk actually used: allocated blocks, each hard-linked file
once, directories included, as ``du -sm`` counts (``du -sm`` rounds up to the next whole MiB).
Nothing in a venv is left out. Each distribution's share is the files its RECORD lists
(wherever in the venv they are, e.g. its bin/ scripts); directory entries and files in no
RECORD are a line of their own, so the shares add up to the venv's site-packages and scripts.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import provenance  # noqa: E402  (beside this script)
MIB = 1024 * 1024
# role -> extras; the install spec is "<source>" or "<source>[extras]".
ROLES = {"base": "", "sim": "sim", "plots": "plots", "sim+plots": "sim,plots"}
# What the source copy leaves out when the tree is not a git checkout.
NOT_SOURCE = (".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".venv",
              ".venv-test", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache")


class Failed(Exception):
    """A step of the run failed; its message is the one line printed."""


def progress(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as exc:
        raise Failed(f"{what}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        last = errors[-1] if errors else "(no output)"
        raise Failed(f"{what} failed (exit {proc.returncode}): {last}")
    return proc


# The header: date, commit, machine.


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict:
    u = platform.uname()
    return {"os": _os_name(), "kernel": f"{u.system} {u.release} {u.machine}",
            "cpus": os.cpu_count(), "ram_gib": _ram_gib(),
            "python": platform.python_version()}


def header(args, m: dict, pip_version: str) -> list[str]:
    ram = f"{m['ram_gib']:.1f} GiB RAM" if m["ram_gib"] is not None else "RAM unknown"
    return [
        "# Install size by role",
        "",
        (f"- generated: {args.started:%Y-%m-%d %H:%M} UTC by "
         f"`{' '.join(['python benchmarks/install_size.py', *args.argv])}`"),
        f"- commit: {provenance.commit()}",
        (f"- machine: {m['os']}, {m['kernel']}, {m['cpus']} CPUs, {ram}; "
         f"Python {m['python']} (`python -m venv`, its pip {pip_version})"),
        ("- sizes: MiB of disk used (allocated blocks, hard links once, directories included; "
         "`du -sm` shows the same rounded up); nothing in a venv is left out"),
        ("- venv's own: what `python -m venv` alone makes (the interpreter links, pip, "
         "setuptools); added: the rest, what the install brought"),
        "",
    ]


# Measuring.


def _blocks(st: os.stat_result) -> int:
    return st.st_blocks * 512


def tree_usage(top: Path) -> int:
    """Bytes of disk under top, as du counts them (blocks; hard links once; no symlink
    followed; directories included)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames, ""]:  # "": the directory itself
            path = os.path.join(dirpath, name) if name else dirpath
            try:
                st = os.lstat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += _blocks(st)
    return total


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise Failed(f"no lib/python*/site-packages in {venv}")
    return found[0]


def _dist_name(dist_info: Path) -> tuple[str, str]:
    stem = dist_info.name[: -len(".dist-info")]
    name, _, version = stem.rpartition("-") if "-" in stem else (stem, "", "")
    try:
        for line in (dist_info / "METADATA").read_text(errors="replace").splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Version:"):
                version = line.split(":", 1)[1].strip()
            elif not line.strip():
                break
    except OSError:
        pass
    return name, version


def distributions(venv: Path) -> dict:
    """Each distribution's bytes (the files its RECORD lists), and the bytes of site-packages
    and bin/ that no RECORD lists (directory entries, files written after the install)."""
    site = site_packages(venv)
    claimed: set[tuple[int, int]] = set()
    dists = []
    for info in sorted(site.glob("*.dist-info")):
        name, version = _dist_name(info)
        size = files = 0
        record = info / "RECORD"
        rows: list[list[str]] = []
        if record.is_file():
            with record.open(newline="", errors="replace") as fh:
                rows = list(csv.reader(fh))
        paths = {os.path.normpath(os.path.join(site, r[0])) for r in rows if r and r[0]}
        paths |= {str(p) for p in info.rglob("*")}  # the dist-info itself, listed or not
        for path in paths:
            try:
                st = os.lstat(path)
            except OSError:
                continue  # listed, not installed (e.g. a .pyc never compiled)
            key = (st.st_dev, st.st_ino)
            if key in claimed:
                continue
            claimed.add(key)
            size += _blocks(st)
            files += 1
        dists.append({"name": name, "version": version, "bytes": size, "files": files})
    unlisted = 0
    for top in (site, venv / "bin"):
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames, ""]:
                path = os.path.join(dirpath, name) if name else dirpath
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in claimed:
                    claimed.add(key)
                    unlisted += _blocks(st)
    dists.sort(key=lambda d: (-d["bytes"], d["name"].lower()))
    return {"dists": dists, "unlisted_bytes": unlisted}


def measure(venv: Path) -> dict:
    site = site_packages(venv)
    return {"venv_bytes": tree_usage(venv), "site_packages_bytes": tree_usage(site),
            **distributions(venv)}


# Building the venvs.


def source_copy(dest: Path) -> Path:
    """The working tree's source files (tracked and untracked, not ignored) copied to dest."""
    dest.mkdir(parents=True)
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.rmtree(dest)
        shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        return dest
    for rel in files:
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not committed yet
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


def make_venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(path)], f"python -m venv {path}")
    return path


def pip_version(venv: Path) -> str:
    out = _run([str(venv / "bin" / "python"), "-m", "pip", "--version"], "pip --version").stdout
    parts = out.split()
    return parts[1] if len(parts) > 1 else out.strip()


def install(venv: Path, source: Path, extras: str) -> float:
    spec = f"{source}[{extras}]" if extras else str(source)
    t0 = time.perf_counter()
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
          "--disable-pip-version-check", spec],
         f"pip install {'.' if not extras else f'.[{extras}]'}", cwd=source)
    return time.perf_counter() - t0


# Output.


def _mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def _command(extras: str) -> str:
    return f"pip install '.[{extras}]'" if extras else "pip install ."


def markdown(args, m: dict, pip_ver: str, bare: dict, results: dict) -> str:
    own = {d["name"].lower() for d in bare["dists"]}
    lines = header(args, m, pip_ver)
    lines += ["| role | install | venv MiB | venv's own MiB | added MiB | site-packages MiB |",
              "|---|---|---|---|---|---|",
              (f"| (bare venv) | `python -m venv` | {_mib(bare['venv_bytes'])} | "
               f"{_mib(bare['venv_bytes'])} | 0.0 | {_mib(bare['site_packages_bytes'])} |")]
    for role, r in results.items():
        lines.append(f"| {role} | `{_command(ROLES[role])}` | {_mib(r['venv_bytes'])} | "
                     f"{_mib(bare['venv_bytes'])} | "
                     f"{_mib(r['venv_bytes'] - bare['venv_bytes'])} | "
                     f"{_mib(r['site_packages_bytes'])} |")
    lines.append("")
    for role, r in results.items():
        dists = r["dists"]
        top, rest = dists[: args.top], dists[args.top:]
        lines += [f"## {role}: `{_command(ROLES[role])}`", "",
                  f"{len(dists)} distributions; install {r['install_seconds']:.0f} s.", "",
                  "| distribution | version | MiB | |", "|---|---|---|---|"]
        for d in top:
            mark = "venv's own" if d["name"].lower() in own else ""
            lines.append(f"| {d['name']} | {d['version']} | {_mib(d['bytes'])} | {mark} |")
        if rest:
            names = ", ".join(d["name"] for d in rest)
            lines.append(f"| {len(rest)} more: {names} | | "
                         f"{_mib(sum(d['bytes'] for d in rest))} | |")
        lines.append(f"| directory entries, files in no RECORD | | "
                     f"{_mib(r['unlisted_bytes'])} | |")
        added = sum(d["bytes"] for d in dists if d["name"].lower() not in own)
        lines += ["", f"Distributions not in the bare venv: {_mib(added)} MiB.", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roles", default=",".join(ROLES),
                    help=f"comma-separated, of: {', '.join(ROLES)} (default: all)")
    ap.add_argument("--top", type=int, default=8,
                    help="distributions listed one by one per role, largest first (default: 8)")
    ap.add_argument("--out", type=Path, help="write the Markdown here (default: stdout)")
    ap.add_argument("--json", type=Path, help="also write every figure as JSON here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the venvs and the source copy (their directory is printed)")
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    args.argv = argv
    args.started = dt.datetime.now(dt.UTC)
    roles = [x.strip() for x in args.roles.split(",") if x.strip()]
    unknown = [x for x in roles if x not in ROLES]
    if unknown or not roles:
        ap.error(f"--roles: unknown role {unknown[0] if unknown else '(none)'!r}; "
                 f"choose from {', '.join(ROLES)}")
    if args.top < 0:
        ap.error(f"--top: 0 or more, got {args.top}")
    if not (REPO / "setup.cfg").is_file() and not (REPO / "pyproject.toml").is_file():
        ap.error(f"{REPO} is not the kant-slurm source tree (no setup.cfg or pyproject.toml)")
    provenance.commit()  # the tree measured is the one as the run begins

    work = Path(tempfile.mkdtemp(prefix="kant-install-size-"))
    try:
        progress(f"copying the source tree to {work}/src")
        source = source_copy(work / "src")
        progress("bare venv (python -m venv only)")
        bare_venv = make_venv(work / "venv-bare")
        pip_ver = pip_version(bare_venv)
        bare = measure(bare_venv)
        progress(f"bare venv: {_mib(bare['venv_bytes'])} MiB")
        results = {}
        for role in roles:
            venv = make_venv(work / f"venv-{role.replace('+', '-')}")
            progress(f"{role}: {_command(ROLES[role])} into {venv}")
            seconds = install(venv, source, ROLES[role])
            results[role] = {"command": _command(ROLES[role]), "install_seconds": seconds,
                             **measure(venv)}
            progress(f"{role}: {_mib(results[role]['venv_bytes'])} MiB venv, "
                     f"{seconds:.0f} s install")
    except Failed as exc:
        print(f"install_size.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            progress(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    m = machine()
    text = markdown(args, m, pip_ver, bare, results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        progress(f"written to {args.out}")
    else:
        sys.stdout.write(text)
    if args.json:
        doc = {"generated_utc": f"{args.started:%Y-%m-%d %H:%M}", "commit": provenance.commit(),
               "command": " ".join(["python benchmarks/install_size.py", *argv]),
               "machine": m, "pip": pip_ver, "unit": "bytes of disk used (du)",
               "bare_venv": bare, "roles": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        progress(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

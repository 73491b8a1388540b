"""Slurm hostlist expressions: expand and compress, by hand-written cases and round trips."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kant_slurm.errors import InputError
from kant_slurm.hostlist import compress, expand


@pytest.mark.parametrize("expr, hosts", [
    ("gn[01-04,07],cpu1", ["gn01", "gn02", "gn03", "gn04", "gn07", "cpu1"]),
    ("gn09,gn[10-12]", ["gn09", "gn10", "gn11", "gn12"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("gn[001-003]", ["gn001", "gn002", "gn003"]),
    ("single", ["single"]),
    ("a1,a1,a2", ["a1", "a2"]),
    ("", []),
    ("(null)", []),
    (None, []),
])
def test_expand(expr, hosts):
    assert expand(expr) == hosts


@pytest.mark.parametrize("hosts, expr", [
    (["gn01", "gn02", "gn03", "gn04", "gn07", "cpu1"], "gn[01-04,07],cpu1"),
    (["gn09", "gn10", "gn11", "gn12"], "gn[09-12]"),
    (["gn01"], "gn01"),
    (["n8", "n9", "n10", "n11"], "n[8-11]"),
    (["gn098", "gn099", "gn100"], "gn[098-100]"),
    (["login", "gn01", "gn03"], "login,gn[01,03]"),
    ([], ""),
])
def test_compress(hosts, expr):
    assert compress(hosts) == expr


@pytest.mark.parametrize("expr, where", [
    ("gn[01-04", "unclosed"),
    ("gn01-04]", "unmatched"),
    ("gn[04-01]", "backwards"),
    ("gn[a-b]", "'a-b'"),
    ("gn[[1-2]]", "nested"),
])
def test_bad_expressions_name_the_problem(expr, where):
    with pytest.raises(InputError) as err:
        expand(expr)
    assert where in str(err.value) and expr in str(err.value)


@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40, unique=True),
       st.sampled_from([0, 2, 3]))
def test_round_trip(numbers, width):
    hosts = [f"gn{n:0{width}d}" if width else f"gn{n}" for n in numbers]
    assert sorted(expand(compress(hosts))) == sorted(hosts)

"""Distributions, constraints and composition: validation, statistics, reproducibility."""

from __future__ import annotations

import math
import time

import pytest
import scipy.stats

from hpsearch import (
    choice,
    constrained,
    derived,
    loguniform,
    maxlog,
    minlog,
    normal,
    product,
    randint,
    space,
    table,
    uniform,
    union,
)
from hpsearch.errors import SpaceError
from hpsearch.space.constraints import Constraint

KS_THRESHOLD = 0.01
N = 2000


def draw(grid, n, seed=1234, conditions=()):
    return list(space.iter_configurations(grid, conditions, num_searches=n, seed=seed))


def values(dist, n=N, seed=1234):
    return [config["x"] for config in draw({"x": dist}, n, seed)]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: uniform(1, 0), "uniform(low=1, high=0): low must be < high"),
        (lambda: uniform(0, float("nan")), "high must be a finite number, got nan"),
        (lambda: uniform("0", 1), "low must be a finite number, got '0'"),
        (lambda: uniform(0, 1, round=0), "round must be a number of significant digits >= 1, got 0"),
        (lambda: loguniform(0, 1), "loguniform(low=0, high=1): low must be > 0"),
        (lambda: minlog(-1, 1), "minlog(low=-1, high=1): low must be > 0"),
        (lambda: maxlog(2, 2), "maxlog(low=2, high=2): low must be < high"),
        (lambda: normal(0, 0), "normal(mean=0, std=0): std must be > 0"),
        (lambda: normal(0, -1, round=2), "normal(mean=0, std=-1): std must be > 0"),
        (lambda: randint(3, 1), "randint(low=3, high=1): low must be <= high"),
        (lambda: randint(1.5, 3), "randint(low=1.5, high=3): low must be an integer"),
        (lambda: choice([]), "choice(values=[]): values must be a non-empty list"),
        (lambda: choice([1, 2], weights=[1]), "weights must be a list as long as values (2)"),
        (lambda: choice([1, 2], weights=[0, 0]), "at least one weight must be > 0"),
        (lambda: choice([1, 2], weights=[1, -1]), "weights must be >= 0"),
        (lambda: choice([object()]), "choice value 0: value <object"),
        (lambda: uniform(0, 1, constraint=3), "constraint 3 must be a string like '> 0'"),
        (lambda: table(("a", "a"), [(1, 2)]), "column 'a' appears twice"),
        (lambda: table(("a", "b"), [(1, 2), (3,)]), "row 2 (3,) must have 2 values"),
        (lambda: table(("a",), []), "rows must be a non-empty list"),
        (lambda: product({"a": [1]}, {"a": [2]}), "parameter 'a' appears in member 1 and member 2"),
        (lambda: product({"a": [1]}, table(("b", "a"), [(1, 2)])), "parameter 'a' appears in member 1 and member 2"),
        (lambda: union(), "union(): needs at least one member space"),
        (lambda: union({"a": []}), "parameter 'a' in union member 1: value list is empty"),
        (lambda: derived(5), "derived(5): needs a function"),
        (lambda: constrained(object(), "> 0"), "has no rvs() method"),
    ],
)
def test_constructors_validate_their_arguments(make, expected):
    with pytest.raises(SpaceError) as raised:
        make()
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("text", "accepted", "rejected"),
    [
        ("> 0", [1e-9, 3], [0, -2]),
        (">= 1e-3", [1e-3, 1], [9.9e-4]),
        ("% 2 == 0", [0, 4, -2], [1, 3]),
        ("!= 3", [2, 4], [3]),
        ("> 0 and < 1", [0.5], [0, 1, 2]),
        ("< -1 or > 1 and != 5", [-2, 2], [0, 5]),
        ("<=-.5e1", [-5, -6], [-4.9]),
    ],
)
def test_constraint_strings_parse_and_evaluate(text, accepted, rejected):
    constraint = Constraint(text)
    assert [constraint(v) for v in accepted] == [True] * len(accepted)
    assert [constraint(v) for v in rejected] == [False] * len(rejected)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch PWNED')",
        "> 0; import os",
        "x > 0",
        "> ",
        "",
        "and > 0",
        "> 0 and",
        "> 0 > 1",
        "% 0 == 0",
        "% 2",
        "lambda v: v > 0",
        "> 1 if True else 0",
        "> 0x10",
    ],
)
def test_constraint_strings_that_are_not_in_the_language_are_rejected(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match="constraint"):
        uniform(0, 1, constraint=text)
    assert not (tmp_path / "PWNED").exists()


def test_lists_of_constraints_and_callables_all_apply():
    result = values(randint(-50, 50, constraint=["> 0", lambda v: v % 5 == 0]), n=10)
    assert result and all(v > 0 and v % 5 == 0 for v in result)
    assert len(result) == 10


def test_uniform_matches_its_distribution():
    sample = values(uniform(2, 5))
    assert all(2 <= v <= 5 for v in sample)
    assert scipy.stats.kstest(sample, "uniform", args=(2, 3)).pvalue > KS_THRESHOLD


def test_loguniform_is_uniform_on_the_log_scale():
    sample = values(loguniform(1e-5, 1e-1))
    assert all(1e-5 <= v <= 1e-1 for v in sample)
    logs = [math.log(v) for v in sample]
    low, high = math.log(1e-5), math.log(1e-1)
    assert scipy.stats.kstest(logs, "uniform", args=(low, high - low)).pvalue > KS_THRESHOLD


def test_normal_matches_its_distribution():
    sample = values(normal(1.5, 2.0))
    assert scipy.stats.kstest(sample, "norm", args=(1.5, 2.0)).pvalue > KS_THRESHOLD


def test_minlog_is_dense_near_low_and_maxlog_mirrors_it():
    low, high = 1.0, 1000.0
    small, large = values(minlog(low, high)), values(maxlog(low, high))
    assert all(low <= v <= high for v in small + large)
    assert sorted(small)[N // 2] < 100 < sorted(large)[N // 2]
    mirrored = [math.log(low + high - v) for v in large]
    span = math.log(high) - math.log(low)
    assert scipy.stats.kstest(mirrored, "uniform", args=(math.log(low), span)).pvalue > KS_THRESHOLD


def test_randint_includes_both_ends_and_choice_honours_zero_weights():
    assert set(values(randint(3, 5), n=200)) == {3, 4, 5}  # the 3 distinct values come up fast
    picked = [c["x"] for c in space.iter_configurations({"x": choice(["a", "b", "c"], weights=[1, 0, 3])},
                                                         [], num_searches=2, random_search=True)]
    assert sorted(picked) == ["a", "c"]


def test_round_keeps_significant_digits():
    sample = values(loguniform(1e-5, 1e-1, round=2), n=50)
    assert all(v == float(f"{v:.2g}") and 1e-5 <= v <= 1e-1 for v in sample)


def test_impossible_constraint_raises_quickly_naming_parameter_and_constraint():
    started = time.perf_counter()
    with pytest.raises(SpaceError) as raised:
        draw({"lr": uniform(0, 1, constraint="> 2")}, 5)
    assert time.perf_counter() - started < 5
    assert "parameter 'lr'" in str(raised.value) and "'> 2'" in str(raised.value)


def test_impossible_derived_constraint_raises_after_bounded_draws():
    grid = {"a": uniform(0, 1), "b": derived(lambda c: c["a"] * 2, constraint="> 5")}
    with pytest.raises(SpaceError, match="derived parameter 'b' with constraint '> 5'"):
        draw(grid, 3)


def test_validate_space_catches_impossible_constraints_and_derived_errors_before_a_run():
    with pytest.raises(SpaceError, match=r"^grid module m: parameter 'lr'.*'< 0'"):
        space.validate_space({"lr": uniform(0, 1, constraint="< 0")}, [], "grid module m")
    typo = union({"a": [1]}, {"b": [2], "c": derived(lambda c: c["d"] + 1)})
    with pytest.raises(SpaceError, match=r"^grid module m: derived parameter 'c'.* raised KeyError: 'd'"):
        space.validate_space(typo, [], "grid module m")
    with pytest.raises(SpaceError, match=r"conditions\[0\] uses derived parameter 'c'"):
        space.validate_space({"a": [1], "c": derived(lambda c: 2)}, [({"c": [2]}, {"a": [3]})], "m")


def test_distributions_need_num_searches():
    for options in ({}, {"num_searches": -1}, {"num_searches": -1, "random_search": True}):
        with pytest.raises(SpaceError) as raised:
            space.iter_configurations({"a": [1], "lr": loguniform(1e-5, 1e-1)}, [], **options)
        assert "the space contains distributions (parameter 'lr'), so --num_searches is required" in str(raised.value)
    assert not space.SearchSpace.compile({"a": [1], "lr": loguniform(1e-5, 1e-1)}, []).finite


def test_scipy_frozen_distributions_are_reproducible_and_constrainable():
    grid = {"x": scipy.stats.expon(scale=2.0), "n": constrained(scipy.stats.poisson(3), ">= 2")}
    first, second = draw(grid, 20, seed=5), draw(grid, 20, seed=5)
    assert first == second and first != draw(grid, 20, seed=6)
    assert all(type(c["x"]) is float and c["x"] > 0 for c in first)
    assert all(type(c["n"]) is int and c["n"] >= 2 for c in first)
    assert repr(grid["n"]) == "constrained(scipy.stats.poisson(3), '>= 2')"
    positive = values(constrained(scipy.stats.norm(0, 1), "> 0"), n=300)
    assert min(positive) > 0


def test_reprs_describe_the_distributions():
    assert repr(loguniform(1e-05, 0.1)) == "loguniform(1e-05, 0.1)"
    assert repr(uniform(0, 1, round=3)) == "uniform(0, 1, round=3)"
    assert repr(normal(0, 1, constraint="> 0")) == "normal(0, 1, constraint='> 0')"
    assert repr(randint(1, 6)) == "randint(1, 6)"
    assert repr(choice(["a", "b"], weights=[1, 2])) == "choice(['a', 'b'], weights=[1, 2])"
    assert repr(constrained(minlog(1, 10), "!= 3")) == "minlog(1, 10, constraint='!= 3')"
    assert repr(constrained(scipy.stats.norm(loc=0), "> 0")) == "constrained(scipy.stats.norm(loc=0), '> 0')"
    assert space.validate_space({"g": scipy.stats.gamma(2, scale=3)}, [], "m") == []


def test_conditions_apply_to_drawn_configurations():
    grid = {"opt": choice(["sgd", "adam"]), "lr": loguniform(1e-4, 1e-1), "momentum": [0.0]}
    result = draw(grid, 200, conditions=[({"opt": ["sgd"]}, {"momentum": [0.9]})])
    assert {c["opt"] for c in result} == {"sgd", "adam"}
    assert all(c["momentum"] == (0.9 if c["opt"] == "sgd" else 0.0) for c in result)


def test_union_of_sampled_spaces_picks_members_uniformly():
    result = draw([{"a": uniform(0, 1)}, {"b": uniform(0, 1)}], 1000)
    from_a = sum("a" in c for c in result)
    assert scipy.stats.binomtest(from_a, 1000, 0.5).pvalue > KS_THRESHOLD


def test_tables_and_derived_values_inside_a_sampled_product():
    grid = product(
        table(("d_model", "heads"), [(256, 4), (512, 8)]),
        {"lr": loguniform(1e-4, 1e-2), "d_ff": derived(lambda c: 4 * c["d_model"]),
         "head_dim": derived(lambda c: c["d_model"] // c["heads"])},
    )
    result = draw(grid, 100)
    assert {(c["d_model"], c["heads"]) for c in result} == {(256, 4), (512, 8)}
    assert all(c["d_ff"] == 4 * c["d_model"] and c["head_dim"] == 64 for c in result)
    assert list(result[0]) == ["d_model", "heads", "lr", "d_ff", "head_dim"]


def test_sampling_a_huge_space_is_fast_and_reproducible():
    grid = {f"p{i}": list(range(10)) for i in range(12)}
    grid["lr"] = loguniform(1e-5, 1e-1, constraint="< 1e-2")
    started = time.perf_counter()
    result = draw(grid, 1000, seed=9)
    assert time.perf_counter() - started < 1.0
    assert len(result) == 1000 and all(c["lr"] < 1e-2 for c in result)
    assert draw(grid, 10, seed=9) == result[:10]

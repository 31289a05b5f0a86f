"""Plain hypnettorch grids: enumeration order, conditions, dedupe, shuffling, keys."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from hpsearch import space
from hpsearch.errors import SpaceError
from hpsearch.space.permutation import IndexPermutation

GRID_MODULE = '''
grid = {
    "lr": [0.1, 0.01],
    "optimizer": ["sgd", "adam"],
    "momentum": [0.0],
    "nesterov": [False],
}
conditions = [
    ({"optimizer": ["sgd"]}, {"momentum": [0.5, 0.9]}),
    ({"lr": [0.01], "momentum": [0.9]}, {"nesterov": [False, True]}),
]
'''


def load_module(tmp_path: Path, source: str):
    path = tmp_path / "hpsearch_config.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hpsearch_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configs(grid, conditions=(), **options):
    return list(space.iter_configurations(grid, conditions, **options))


def test_grid_module_with_two_conditions_yields_the_hypnettorch_list(tmp_path):
    module = load_module(tmp_path, GRID_MODULE)
    row = lambda lr, opt, mom, nest: {"lr": lr, "optimizer": opt, "momentum": mom, "nesterov": nest}  # noqa: E731
    assert configs(module.grid, module.conditions, shuffle=False) == [
        row(0.1, "sgd", 0.5, False),
        row(0.1, "sgd", 0.9, False),
        row(0.1, "adam", 0.0, False),
        row(0.01, "sgd", 0.5, False),
        row(0.01, "sgd", 0.9, False),
        row(0.01, "sgd", 0.9, True),
        row(0.01, "adam", 0.0, False),
    ]
    assert space.validate_space(module.grid, module.conditions, "grid module m") == []
    assert space.SearchSpace.compile(module.grid, []).node.size() == 4
    assert space.grid_keys(module.grid) == ["lr", "optimizer", "momentum", "nesterov"]


def test_each_condition_is_applied_once_in_order_and_duplicates_keep_the_first():
    grid = {"a": [1, 2], "b": [0]}
    conditions = [
        ({"a": [1]}, {"b": [7]}),
        ({"b": [0]}, {"a": [1]}),  # makes (2, 0) into (1, 0); condition 1 is not applied again
        ({"a": [1], "b": [7]}, {"b": [0, 7]}),  # (1, 7) -> (1, 0), (1, 7); (1, 0) repeats below
    ]
    assert configs(grid, conditions, shuffle=False) == [{"a": 1, "b": 0}, {"a": 1, "b": 7}]


def test_conditions_compare_values_as_python_does_and_the_last_duplicate_stays():
    grid = {"layers": [[100, 100], [200]], "flag": [True, 1], "x": [0]}
    conditions = [({"layers": [[200]], "flag": [1]}, {"x": [5]})]  # 1 matches True too, as in hypnettorch
    result = configs(grid, conditions, shuffle=False)
    assert [list(config.items()) for config in result] == [
        [("layers", [100, 100]), ("flag", 1), ("x", 0)],  # True == 1: one configuration, hypnettorch keeps the last
        [("x", 5), ("layers", [200]), ("flag", 1)],  # the action's keys come first
    ]


def test_list_values_work_and_tuples_equal_lists_in_the_dedupe():
    grid = {"hidden": [[10, 10], (10, 10), [5]], "name": ["a b", '"quoted"']}
    result = configs(grid, shuffle=False)
    assert result == [
        {"hidden": (10, 10), "name": "a b"},
        {"hidden": (10, 10), "name": '"quoted"'},
        {"hidden": [5], "name": "a b"},
        {"hidden": [5], "name": '"quoted"'},
    ]


def test_condition_whose_cond_names_an_unknown_key_is_dropped_with_a_warning_and_actions_add_keys():
    grid = {"a": [1, 2]}
    conditions = [({"b": [1]}, {"a": [3]}), ({"a": [1]}, {"typo": [3]})]
    warnings = space.validate_space(grid, conditions, "grid module m (/x/m.py)")
    assert warnings == ["grid module m (/x/m.py): conditions[0]: cond key 'b' is not a grid key; "
                        "the condition is dropped, as hypnettorch drops it"]
    assert [list(c.items()) for c in configs(grid, conditions, shuffle=False)] == [
        [("typo", 3), ("a", 1)], [("a", 2)]]
    assert space.SearchSpace.compile(grid, conditions).keys() == ["a", "typo"]


def test_a_dropped_condition_is_not_looked_at_beyond_its_cond_keys():
    conditions = [({"gone": 0.1}, "not a dict"), ({"a": [1]}, {"b": [5]})]  # hypnettorch drops the first
    assert [list(c.items()) for c in configs({"a": [1]}, conditions)] == [[("b", 5), ("a", 1)]]


def test_a_cond_value_in_no_value_list_warns_with_a_suggestion():
    grid = {"opt": ["sgd", "adam"], "lr": [1, 2]}
    conditions = [({"opt": ["SGD"]}, {"lr": [3]}), ({"opt": ["SGD", "adam"], "lr": [3]}, {"x": [1]})]
    assert space.SearchSpace.compile(grid, conditions).warnings == [
        "conditions[0]: value 'SGD' of 'opt' is in no value list of 'opt', so it matches nothing "
        "(did you mean 'sgd'?)"]  # once per value; lr=3 is set by an action, so it can match


def test_of_equal_configurations_the_copy_hypnettorch_keeps_runs_with_its_flag_order():
    # {b: 1, a: 1} becomes {a: 2, b: 1}, equal to the untouched {b: 1, a: 2}; hypnettorch keeps the
    # replacement (it comes last in its list), so the run gets --a=2 --b=1.
    grid, conditions = {"b": [1, 2], "a": [2, 1]}, [({"a": [1]}, {"a": [2]})]
    for shuffle, seed in [(False, 0), *((True, seed) for seed in range(6))]:
        assert sorted(list(c.items()) for c in configs(grid, conditions, shuffle=shuffle, seed=seed)) == [
            [("a", 2), ("b", 1)], [("a", 2), ("b", 2)]]


def test_an_empty_action_leaves_the_configuration_as_it_is():
    assert [list(c.items()) for c in configs({"a": [1, 2], "b": [0]}, [({"a": [1]}, {})], shuffle=False)] == [
        [("a", 1), ("b", 0)], [("a", 2), ("b", 0)]]


@pytest.mark.parametrize(
    ("grid", "conditions", "expected"),
    [
        ({"lr": []}, [], "parameter 'lr': value list is empty"),
        ({"lr": 0.1}, [], "parameter 'lr': value must be a list of values or a distribution, got 0.1"),
        ({"lr": [object()]}, [], "parameter 'lr', value 0: value <object"),
        ({"": [1]}, [], "parameter name '' must be a non-empty string"),
        ({}, [], "grid is an empty dict"),
        ({"a=b": [1]}, [], "parameter name 'a=b' cannot be a flag"),
        ({"a b": [1]}, [], "parameter name 'a b' cannot be a flag"),
        ({"-a": [1]}, [], "parameter name '-a' cannot be a flag"),
        ({"a": ["x\x00y"]}, [], "parameter 'a', value 0: value 'x\\x00y' contains a NUL byte"),
        ({"a": [1]}, [({"a": [1]}, {"b": ["\x00"]})],
         "conditions[0] (action): parameter 'b': value '\\x00' contains a NUL"),
        ({"a": [1]}, [({"a": [1]}, {"b c": [1]})], "conditions[0] (action): parameter name 'b c' cannot be a flag"),
        ([], [], "grid is an empty list"),
        ("lr=0.1", [], "grid must be a dict"),
        ({"lr": [1]}, {"lr": [1]}, "conditions must be a list of (condition, action) pairs"),
        ({"lr": [1]}, [({"lr": [1]},)], "conditions[0]: ({'lr': [1]},) is not a (cond dict, action dict) pair"),
        ({"lr": [1]}, [({"lr": 1}, {})], "conditions[0] (cond): parameter 'lr' must map to a list of values, got 1"),
        ({"lr": [1]}, [({"lr": [1]}, {"lr": []})], "conditions[0] (action): parameter 'lr' has an empty value list"),
    ],
)
def test_validate_space_names_where_the_parameter_and_the_problem(grid, conditions, expected):
    with pytest.raises(SpaceError) as raised:
        space.validate_space(grid, conditions, "grid module m (/x/m.py)")
    assert str(raised.value).startswith("grid module m (/x/m.py): ")
    assert expected in str(raised.value)


def test_none_conditions_mean_no_conditions():
    assert space.validate_space({"a": [1]}, None, "m") == []
    assert configs({"a": [1]}, None) == [{"a": 1}]


SCRIPT = """
import json
from hpsearch import space, uniform, choice
grid = {"name": ["a", "b", "c", "d"], "layers": [[1], [2, 2], [3]], "k": [True, 1, None]}
conditions = [({"name": ["b"]}, {"k": [False]})]
shuffled = list(space.iter_configurations(grid, conditions, seed=7))
random_search = list(space.iter_configurations(grid, conditions, seed=7, num_searches=5, random_search=True))
sampled = list(space.iter_configurations({"lr": uniform(0, 1), "o": choice(["x", "y"])}, [], seed=7, num_searches=5))
print(json.dumps([shuffled, random_search, sampled]))
"""


def run_with_hashseed(hashseed: str) -> list:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_same_seed_gives_the_same_order_in_processes_with_different_hash_seeds():
    first, second = run_with_hashseed("1"), run_with_hashseed("2")
    assert first == second
    shuffled = first[0]
    assert len(shuffled) == 4 * 3 * 3 - 3 * 2 - 3 * 3  # name 'b' collapses k to False; True == 1 elsewhere
    assert shuffled != configs(
        {"name": ["a", "b", "c", "d"], "layers": [[1], [2, 2], [3]], "k": [True, 1, None]},
        [({"name": ["b"]}, {"k": [False]})],
        shuffle=False,
    )


def test_different_seeds_give_different_orders_of_the_same_configurations():
    grid = {"a": list(range(6)), "b": list(range(4))}
    by_seed = {seed: configs(grid, seed=seed) for seed in (1, 2, 3)}
    assert by_seed[1] == configs(grid, seed=1)
    assert by_seed[1] != by_seed[2] != by_seed[3]
    keys = lambda result: sorted(json.dumps(c) for c in result)  # noqa: E731
    assert keys(by_seed[1]) == keys(by_seed[2]) == keys(configs(grid, shuffle=False))


@pytest.mark.parametrize("options", [{}, {"shuffle": False}, {"random_search": True}])
def test_a_shorter_search_is_a_prefix_of_a_longer_one(options):
    grid = {"a": list(range(10)), "b": list(range(10)), "c": ["x", "y"]}
    conditions = [({"c": ["y"]}, {"a": [0]})]
    ten = configs(grid, conditions, num_searches=10, seed=3, **options)
    twenty = configs(grid, conditions, num_searches=20, seed=3, **options)
    assert len(ten) == 10 and len(twenty) == 20
    assert twenty[:10] == ten


def test_a_billion_point_grid_yields_its_first_hundred_at_once():
    grid = {f"p{i}": list(range(10)) for i in range(9)}
    assert space.SearchSpace.compile(grid, []).node.size() == 10**9
    tracemalloc.start()
    try:
        result = configs(grid, num_searches=100, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak} bytes: the grid was materialised"  # 10^9 points would need far more
    assert len({space.config_key(c) for c in result}) == 100
    assert all(list(c) == list(grid) and all(0 <= v <= 9 for v in c.values()) for c in result)


def test_shuffled_full_grid_is_a_permutation_of_the_grid():
    grid = {"a": list(range(7)), "b": ["x", "y", "z"]}
    shuffled = configs(grid, seed=11)
    ordered = configs(grid, shuffle=False)
    assert shuffled != ordered
    assert sorted(map(json.dumps, shuffled)) == sorted(map(json.dumps, ordered))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 17, 64, 100, 1000])
def test_index_permutation_is_a_bijection(size):
    assert sorted(IndexPermutation(size, seed=5)) == list(range(size))


def test_random_search_stops_when_the_space_is_exhausted():
    result = configs({"a": [1, 2, 3]}, num_searches=50, random_search=True)
    assert sorted(c["a"] for c in result) == [1, 2, 3]
    with pytest.raises(SpaceError, match="needs --num_searches > 0"):
        space.iter_configurations({"a": [1]}, [], random_search=True)


def test_config_key_is_stable_and_tells_types_apart():
    config = {"lr": 0.001, "optimizer": "adam", "layers": [100, 100], "bias": True, "seed": 1, "note": None}
    # sha256 of {"bias":true,"layers":[100,100],"lr":0.001,"note":null,"optimizer":"adam","seed":1}
    assert space.config_key(config) == "f6434a24112c0cb4"
    assert space.config_key(dict(reversed(config.items()))) == "f6434a24112c0cb4"
    assert space.config_key({"layers": (100, 100)}) == space.config_key({"layers": [100, 100]})
    assert space.config_key({"x": True}) != space.config_key({"x": 1})
    assert space.config_key({"x": 1}) != space.config_key({"x": 1.0})
    assert len({space.config_key({"x": v}) for v in (0, False, None, "0", 0.0, [0])}) == 6


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": {1, 2}}, {"x": [b"bytes"]}, {1: 2}, [("x", 1)]])
def test_config_key_rejects_values_that_are_not_json_like(bad):
    with pytest.raises(SpaceError):
        space.config_key(bad)

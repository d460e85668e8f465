"""Long-range runs through the one trainer: the results record, stopping, solved criteria."""

from __future__ import annotations

import json

import pytest

from elman.lab.longrange import TaskConfig, plot_curves, run, solved, summary_line

KEYS = {"recipe", "aim", "metrics", "wall_time_s", "device", "commit", "date", "command"}


def tiny(**changes) -> TaskConfig:
    base = dict(T=6, hidden_size=8, batch_size=8, steps=40, eval_every=20, valid_size=30,
                test_size=50, max_minutes=None)  # fmt: skip
    return TaskConfig(**{**base, **changes})


@pytest.mark.parametrize("task,cell", [("adding", "irnn"), ("copy", "lstm")])
def test_run_writes_the_results_record(tmp_path, task, cell):
    results = tmp_path / "results" / f"lab-{task}.json"
    record = run(tiny(task=task, cell=cell), out=tmp_path / "run", results=results, command="x")
    assert KEYS <= set(record) and record["command"] == "x"
    assert json.loads(results.read_text()) == json.loads(
        (tmp_path / "run/results.json").read_text()
    )
    key = "mse" if task == "adding" else "accuracy"
    assert key in record["metrics"]["valid"] and key in record["metrics"]["test"]
    assert [c[0] for c in record["curve"]] == [20, 40]
    assert record["steps"] == 40 and record["stopped"] in ("steps", "solved")
    assert (tmp_path / "run" / "curve.png").stat().st_size > 0
    assert task in summary_line(record)
    assert plot_curves([record, record], tmp_path / "both.png").exists()


def test_run_stops_when_solved(tmp_path, monkeypatch):
    monkeypatch.setattr("elman.lab.longrange.solved", lambda task, metrics: True)
    record = run(tiny(), out=tmp_path / "run")
    assert record["steps_to_solve"] == 20 and record["steps"] == 20
    assert record["stopped"] == "solved"


def test_solved_criteria_and_config_checks():
    assert solved("adding", {"mse": 0.009}) and not solved("adding", {"mse": 0.02})
    assert solved("copy", {"accuracy": 0.995}) and not solved("copy", {"accuracy": 0.9})
    c = TaskConfig(cell="lstm")
    assert c.optimizer == "adam" and c.clip_norm == 1.0  # the cell's defaults fill in
    assert TaskConfig(cell="lstm", lr=0.5).lr == 0.5
    for bad in ({"cell": "rnn"}, {"task": "sort"}, {"optimizer": "rmsprop"}, {"lr": -1.0}):
        with pytest.raises(ValueError):
            TaskConfig(**bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
        ({"clip_norm": float("inf")}, "clip_norm must be a finite number > 0, got inf"),
        ({"max_minutes": float("nan")}, "max_minutes must be a finite number > 0"),
        ({"test_size": 0}, "test_size must be at least 1"),
        ({"seed": 2**40}, "seed must be in 0 … 4294967295"),
    ],
)
def test_numbers_that_pass_a_comparison_but_are_not_usable(bad, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig(**bad)


def test_seeds_record_holds_each_run_and_the_mean_and_std(tmp_path):
    import statistics

    from elman.lab.longrange import run_seeds, seeds_table

    config = tiny(cell="rnn", activation="relu", init="identity", stop_when_solved=False)
    results = tmp_path / "seeds.json"
    record = run_seeds(config, [1, 2, 3], out=tmp_path / "run", results=results, command="x")
    assert KEYS <= set(record) and record["seeds"] == [1, 2, 3]
    assert [r["config"]["seed"] for r in record["runs"]] == [1, 2, 3]
    values = [r["metrics"]["test"]["mse"] for r in record["runs"]]
    spread = record["spread"]["test"]["mse"]
    assert spread["values"] == values and spread["n"] == 3
    assert spread["mean"] == pytest.approx(statistics.fmean(values))
    assert spread["std"] == pytest.approx(statistics.stdev(values))
    assert record["metrics"]["test"]["mse"] == spread["mean"]
    assert record["recipe"] == "lab-adding-T6-rnn-relu-identity"
    assert "seed" not in record["config"] and record["config"]["seeds"] == [1, 2, 3]
    assert json.loads(results.read_text())["spread"] == json.loads(json.dumps(record["spread"]))
    assert "rnn-relu-identity" in seeds_table([record]) and "± " in summary_line(record)
    assert plot_curves([record], tmp_path / "seeds.png").exists()
    with pytest.raises(Exception, match="already holds a run"):
        run_seeds(config, [2], out=tmp_path / "run")


def test_mean_curve_leaves_out_diverged_seeds():
    from elman.lab.longrange import mean_curve

    runs = [{"curve": []}, {"curve": [[250, None], [500, None]]},
            {"curve": [[250, 0.2], [500, 0.1]]}, {"curve": [[250, 0.4], [500, 0.3]]}]  # fmt: skip
    steps, mean, low, high = mean_curve({"runs": runs})
    assert steps == [250, 500] and mean == pytest.approx([0.3, 0.2])
    assert low == [0.2, 0.1] and high == [0.4, 0.3]
    assert mean_curve({"runs": runs[:2]}) == ([], [], [], [])

"""``elman lab gradients|depth|exploding|adding|copy|plot``: vanishing and exploding gradients.

    elman lab gradients --cells rnn-tanh,rnn-sigmoid,irnn,lstm,gru --data ptb --out runs/grad
    elman lab gradients --checkpoint runs/ptb-lstm/best.pt --out runs/grad-trained
    elman lab depth --cells rnn-tanh,lstm --layers 6 --out runs/depth
    elman lab exploding --out runs/exploding
    elman lab adding --cell irnn --T 150 --out runs/adding-irnn \
        --results results/lab-adding-T150-irnn.json
    elman lab copy --cell lstm --T 100 --out runs/copy-lstm
    elman lab plot results/lab-adding-T150-*.json --out docs/img/adding.png

Each is also a function: :func:`elman.lab.gradients.run`, :func:`elman.lab.exploding.run`,
:func:`elman.lab.longrange.run` (adding and copy), :func:`elman.lab.longrange.plot_curves`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elman.cli.options import SEED, THREADS, check_output, integer, real, use_threads
from elman.errors import ElmanError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab", help="gradient flow, clipping, IRNN and the long-range tasks", description=__doc__
    )
    cmds = p.add_subparsers(
        dest="lab_command", metavar="{gradients,depth,exploding,adding,copy,plot}"
    )
    p.set_defaults(func=lambda args: p.print_help() or 2)

    g = cmds.add_parser("gradients", help="|dJ_T/dh_t| and |dh_T/dh_t| against T - t")
    g.add_argument(
        "--cells",
        default=None,
        help="comma-separated: rnn-tanh, rnn-sigmoid, rnn-relu, irnn, lstm, gru (default: "
        "rnn-tanh,rnn-sigmoid,irnn,lstm,gru without --checkpoint, none with it)",
    )
    g.add_argument(
        "--checkpoint", help="also measure this trained RNN LM, a run folder or .pt (default: none)"
    )
    g.add_argument("--data", help="dataset name or folder (default ptb, or the checkpoint's)")
    g.add_argument("--split", default="valid", help="split the windows come from")
    g.add_argument("--steps", type=integer(1, 10_000), default=100, help="window length T")
    g.add_argument("--batch", type=integer(1, 10_000), default=16, help="windows averaged over")
    g.add_argument("--hidden", type=integer(1, 10_000), default=200, help="units of the random LMs")
    g.add_argument("--seed", type=SEED, default=1, help="random seed")
    g.add_argument("--out", required=True, help="folder for gradients.csv and gradients.png")
    g.add_argument("--plot", help="write the PNG here (default: OUT/gradients.png)")
    g.add_argument("--threads", type=THREADS, default=1, help="torch threads (1: small matrices)")
    g.set_defaults(func=_gradients)

    d = cmds.add_parser("depth", help="|dJ/dtheta_l| per layer of a deep (bi)directional stack")
    d.add_argument(
        "--cells", default="rnn-tanh", help="comma-separated: rnn-tanh, rnn-relu, irnn, lstm, gru"
    )
    d.add_argument("--layers", type=integer(1, 100), default=6, help="depth of the stack")
    d.add_argument("--T", type=integer(2, 100_000), default=50, help="adding problem length")
    d.add_argument("--hidden", type=integer(1, 10_000), default=64, help="units per direction")
    d.add_argument("--batch-size", type=integer(1, 100_000), default=32, help="training batch")
    d.add_argument("--steps", type=integer(1), default=300, help="training steps (Adam)")
    d.add_argument("--lr", type=real(0.0, above=True), default=1e-3, help="Adam learning rate")
    d.add_argument("--clip", type=real(0.0, above=True), default=1.0, help="clip_norm")
    d.add_argument(
        "--measure-size", type=integer(1, 100_000), default=256, help="sequences measured on"
    )
    d.add_argument("--seeds", type=SEED, nargs="+", default=[1, 2, 3], help="random seeds")
    d.add_argument("--out", required=True, help="folder for the runs, depth.json and depth.png")
    d.add_argument("--plot", help="write the PNG here (default: OUT/depth.png)")
    d.add_argument(
        "--results",
        help="also write the record here, e.g. results/lab-depth-*.json (default: none)",
    )
    d.add_argument("--threads", type=THREADS, default=1, help="torch threads")
    d.set_defaults(func=_depth)

    e = cmds.add_parser("exploding", help="W_hh scaled up: training without and with clipping")
    e.add_argument("--data", default="ptb", help="dataset name or folder")
    e.add_argument("--out", required=True, help="folder for the two runs, JSON and PNG")
    e.add_argument("--steps", type=integer(1), default=300, help="training steps per run")
    e.add_argument("--hidden", type=integer(1, 10_000), default=128, help="hidden units")
    e.add_argument("--nonlinearity", default="relu", choices=["relu", "tanh"], help="of the RNN")
    e.add_argument(
        "--scale", type=real(0.0, above=True), default=1.2, help="singular values of W_hh"
    )
    e.add_argument("--lr", type=real(0.0, above=True), default=1.0, help="SGD learning rate")
    e.add_argument(
        "--clip", type=real(0.0, above=True), default=1.0, help="clip_norm of the clipped run"
    )
    e.add_argument("--batch-size", type=integer(1, 100_000), default=20, help="batch columns")
    e.add_argument("--bptt", type=integer(1, 100_000), default=35, help="steps per batch")
    e.add_argument("--seed", type=SEED, default=1, help="random seed")
    e.add_argument(
        "--seeds",
        type=SEED,
        nargs="+",
        help="the controlled experiment: for each seed, no clipping and each of --clips "
        "(default: none, the two-run demo with --seed and --clip)",
    )
    e.add_argument(
        "--clips",
        type=real(0.0, above=True),
        nargs="+",
        default=[1.0, 10.0],
        help="thresholds of the experiment with --seeds",
    )
    e.add_argument("--results", help="with --seeds: also write the record here (default: none)")
    e.add_argument("--plot", help="write the PNG here (default: OUT/exploding.png)")
    e.add_argument("--threads", type=THREADS, default=1, help="torch threads")
    e.set_defaults(func=_exploding)

    positive = real(0.0, above=True)
    for task, T in (("adding", 150), ("copy", 100)):
        t = cmds.add_parser(task, help=f"train one cell on the {task} task")
        t.add_argument(
            "--cell",
            default="irnn",
            help="irnn, rnn-tanh, rnn-sigmoid, rnn-relu, lstm, gru (cuDNN's), or rnn: the "
            "2 x 2 design's simple RNN, named by --activation and --init",
        )
        t.add_argument(
            "--activation", choices=["tanh", "relu"], help="of --cell rnn (default: none)"
        )
        t.add_argument(
            "--init",
            choices=["standard", "identity"],
            help="W_hh of --cell rnn: U(-1/sqrt(H), 1/sqrt(H)) or I; b = 0 either way "
            "(default: none)",
        )
        t.add_argument("--T", type=integer(1, 100_000), default=T, help="sequence length / delay")
        t.add_argument("--hidden", type=integer(1, 10_000), default=100, help="hidden units")
        t.add_argument("--batch-size", type=integer(1, 100_000), default=32, help="batch size")
        t.add_argument("--steps", type=integer(1), default=30000, help="at most this many")
        t.add_argument(
            "--eval-every", type=integer(1), default=250, help="steps between validations"
        )
        t.add_argument("--optimizer", help="sgd, adam or adamw (default: the cell's)")
        t.add_argument("--lr", type=positive, help="learning rate (default: the cell's)")
        t.add_argument("--clip", type=positive, help="clip_norm (default: the cell's)")
        t.add_argument(
            "--input-std", type=positive, help="W_hx ~ N(0, std^2) (default: the cell's)"
        )
        t.add_argument("--max-minutes", type=positive, default=10.0, help="wall-time budget")
        t.add_argument("--keep-going", action="store_true", help="train on after solving")
        t.add_argument(
            "--valid-size", type=integer(1, 10_000_000), default=1000, help="validation sequences"
        )
        t.add_argument(
            "--test-size", type=integer(1, 10_000_000), default=10000, help="test sequences"
        )
        t.add_argument("--seed", type=SEED, default=1, help="random seed")
        t.add_argument(
            "--seeds",
            type=SEED,
            nargs="+",
            help="train once per seed, one after the other (OUT/seed-N), and write one record "
            "with the mean and standard deviation over them (default: only --seed)",
        )
        t.add_argument("--threads", type=THREADS, default=1, help="torch threads")
        t.add_argument("--out", required=True, help="run folder")
        t.add_argument(
            "--results", help="also write the record here, e.g. results/lab-*.json (default: none)"
        )
        t.set_defaults(func=_task, task=task)

    q = cmds.add_parser("plot", help="curves and a Markdown table from adding/copy results files")
    q.add_argument("results", nargs="+", help="results JSON files of elman lab adding|copy")
    q.add_argument("--out", required=True, help="PNG to write")
    q.set_defaults(func=_plot)


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise ElmanError(f"--threads must be at least 1, got {n}")
        use_threads(n)


def _outputs(out: str, *names: str, plot: str | None = None, results: str | None = None) -> None:
    """Check every file a lab command will write, before its minutes of work."""
    for name in names:
        check_output(Path(out) / name, "--out")
    if plot is not None:
        check_output(plot, "--plot")
    if results is not None:
        check_output(results, "--results")


def _gradients(args: argparse.Namespace) -> int:
    from elman.lab.cells import parse_cells
    from elman.lab.gradients import run, summary_line

    _threads(args.threads)
    _outputs(args.out, "gradients.csv", "gradients.png", plot=args.plot)
    cells = args.cells
    if cells is None and args.checkpoint is None:
        cells = "rnn-tanh,rnn-sigmoid,irnn,lstm,gru"
    try:
        names = parse_cells(cells) if cells else []
    except ValueError as err:
        raise ElmanError(f"--cells: {err}") from None
    flows = run(
        names, checkpoint=args.checkpoint, data=args.data, split=args.split, steps=args.steps,
        batch=args.batch, hidden=args.hidden, seed=args.seed, out=args.out, plot_path=args.plot,
    )  # fmt: skip
    for name, flow in flows.items():
        print(summary_line(name, flow))
    png = args.plot or Path(args.out) / "gradients.png"
    print(f"wrote {Path(args.out) / 'gradients.csv'} and {png}")
    return 0


def _depth(args: argparse.Namespace) -> int:
    from elman.lab.cells import parse_cells
    from elman.lab.depth import markdown_table, run, summary_lines

    _threads(args.threads)
    _outputs(args.out, "depth.json", "depth.png", plot=args.plot, results=args.results)
    try:
        names = parse_cells(args.cells)
    except ValueError as err:
        raise ElmanError(f"--cells: {err}") from None
    record = run(
        names, layers=args.layers, T=args.T, hidden=args.hidden, batch_size=args.batch_size,
        steps=args.steps, lr=args.lr, clip_norm=args.clip, measure_size=args.measure_size,
        seeds=args.seeds, out=args.out, results=args.results, plot_path=args.plot,
    )  # fmt: skip
    for line in summary_lines(record):
        print(line)
    print(markdown_table(record))
    return 0


def _exploding(args: argparse.Namespace) -> int:
    from elman.lab.exploding import grid_table, run, run_grid, summary_lines

    _threads(args.threads)
    _outputs(args.out, "exploding.json", "exploding.png", plot=args.plot, results=args.results)
    if args.seeds:
        grid = run_grid(
            data=args.data, out=args.out, clips=args.clips, seeds=args.seeds, steps=args.steps,
            hidden=args.hidden, nonlinearity=args.nonlinearity, scale=args.scale, lr=args.lr,
            batch_size=args.batch_size, bptt=args.bptt, results=args.results,
            plot_path=args.plot,
        )  # fmt: skip
        print(grid_table(grid))
        return 0
    if args.results is not None:
        raise ElmanError("--results needs --seeds (the two-run demo writes OUT/exploding.json)")
    record = run(
        data=args.data, out=args.out, steps=args.steps, hidden=args.hidden,
        nonlinearity=args.nonlinearity, scale=args.scale, lr=args.lr, clip_norm=args.clip,
        batch_size=args.batch_size, bptt=args.bptt, seed=args.seed, plot_path=args.plot,
    )  # fmt: skip
    for line in summary_lines(record):
        print(line)
    return 0


def _task(args: argparse.Namespace) -> int:
    from elman.lab.longrange import TaskConfig, run, run_seeds, summary_line

    try:
        config = TaskConfig(
            task=args.task, cell=args.cell, activation=args.activation, init=args.init,
            T=args.T, hidden_size=args.hidden,
            batch_size=args.batch_size, steps=args.steps, eval_every=args.eval_every,
            valid_size=args.valid_size, test_size=args.test_size, optimizer=args.optimizer,
            lr=args.lr, clip_norm=args.clip, input_std=args.input_std,
            stop_when_solved=not args.keep_going, max_minutes=args.max_minutes,
            seed=args.seed, threads=args.threads,
        )  # fmt: skip
    except ValueError as err:
        raise ElmanError(str(err)) from None
    _outputs(args.out, "results.json", "curve.png", results=args.results)
    if args.seeds:
        record = run_seeds(config, args.seeds, out=args.out, results=args.results)
    else:
        record = run(config, out=args.out, results=args.results)
    print(summary_line(record))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from elman.lab.longrange import markdown_table, plot_curves, seeds_table

    check_output(args.out, "--out")
    records = []
    for path in args.results:
        try:
            records.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ElmanError(f"{path}: cannot read a results file ({err})") from None
        if not isinstance(records[-1], dict) or not {"curve", "runs"} & set(records[-1]):
            raise ElmanError(f"{path}: not a results file of `elman lab adding|copy`")
    several = [r for r in records if "runs" in r]  # written with --seeds
    if several:
        print(seeds_table(several))
    if len(several) < len(records):
        print(markdown_table([r for r in records if "runs" not in r]))
    print(f"wrote {plot_curves(records, args.out)}")
    return 0

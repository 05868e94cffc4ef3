"""The judge's commands: `evaltui judge set|run|report|history|compare|import|approve` and `gate`."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaltui.cli_store import force_option, open_store
from evaltui.errors import InvalidInput
from evaltui.judge.trust import check_params
from evaltui.models import Judge, Rubric
from evaltui.store import Store
from evaltui.text import echo, field, json_text

SPLITS = ("dev", "test", "all")


def add_commands(sub: Any, db_option: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register `judge ...` and `gate` on the top-level subparsers."""
    judge = sub.add_parser("judge", help="run and calibrate LLM judges").add_subparsers(
        dest="judge_command", metavar="COMMAND", required=True, parser_class=parser_class
    )

    def common(p: argparse.ArgumentParser, *, name: bool = True) -> None:
        db_option(p)
        p.add_argument("--rubric", required=True, metavar="NAME")
        if name:
            p.add_argument(
                "--judge", metavar="NAME", help="which judge (needed if the rubric has several)"
            )

    def calibration(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--gold",
            metavar="RATER",
            help="gold rater where nothing is adjudicated (default: the human majority)",
        )
        p.add_argument(
            "--split-seed",
            type=int,
            default=0,
            metavar="S",
            help="seed of the train/dev/test split, locked on first use (default 0)",
        )
        p.add_argument("--resamples", type=int, default=2000, help=argparse.SUPPRESS)

    p = judge.add_parser("set", help="define a judge, or a new version of one")
    common(p, name=False)
    p.add_argument(
        "--judge", default="default", metavar="NAME", help="judge name (default: default)"
    )
    p.add_argument(
        "--model", required=True, help="any litellm model string, e.g. openai/gpt-4o-mini"
    )
    p.add_argument(
        "--api-base", default="", metavar="URL", help="for self-hosted OpenAI-compatible servers"
    )
    p.add_argument(
        "--prompt-file",
        type=Path,
        metavar="FILE",
        help="prompt template (default: the built-in one)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter, e.g. temperature=0 (repeatable)",
    )
    p.add_argument(
        "--few-shot",
        default="",
        metavar="ID,...",
        help="labelled train case ids to show as examples",
    )
    p.set_defaults(handler=_set)

    p = judge.add_parser("run", help="run a judge over the human-labelled cases")
    api_base_option(p)
    common(p)
    calibration(p)
    p.add_argument("--concurrency", type=int, default=8, metavar="N")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per call")
    p.add_argument("--retries", type=int, default=4, metavar="N")
    p.add_argument(
        "--cases",
        choices=("labelled", "unlabelled", "all"),
        default="labelled",
        help="which cases (unlabelled ones feed the corrected pass rate)",
    )
    p.add_argument(
        "--retry-errors", action="store_true", help="ask again where an error verdict is stored"
    )
    p.set_defaults(handler=_run)

    p = judge.add_parser("report", help="how well a judge agrees with the humans")
    common(p)
    calibration(p)
    p.add_argument(
        "--split", choices=SPLITS, default="dev", help="dev (default), test (counted) or all"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_report)

    p = judge.add_parser("history", help="every judge version of a rubric on the same cases")
    common(p, name=False)
    calibration(p)
    p.add_argument("--split", choices=SPLITS, default="dev")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_history)

    p = judge.add_parser("compare", help="paired comparison of two judge versions")
    common(p, name=False)
    calibration(p)
    p.add_argument("before", metavar="VERSION", help="a version hash or its prefix")
    p.add_argument("after", metavar="VERSION")
    p.add_argument("--split", choices=SPLITS, default="dev")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_compare)

    p = judge.add_parser(
        "import", help="verdicts another tool's judge gave, as a judge of the rubric"
    )
    db_option(p)
    p.add_argument("file", type=Path)
    p.add_argument("--rubric", required=True, metavar="NAME")
    p.add_argument("--judge", required=True, metavar="NAME")
    p.add_argument("--model", required=True, help="the model that gave the verdicts")
    p.add_argument("--case-id", metavar="COLUMN")
    p.add_argument("--value", metavar="COLUMN")
    p.add_argument(
        "--values",
        metavar="RAW=LABEL,...",
        help="e.g. 1=A,2=B,Tie=tie; anything else is an error verdict",
    )
    p.add_argument("--critique", metavar="COLUMN")
    p.set_defaults(handler=_import)

    p = judge.add_parser("approve", help="write the rubric, judge and test-split figures as TOML")
    common(p)
    calibration(p)
    p.add_argument("--out", type=Path, metavar="PATH", help="default: rubrics/<name>.toml")
    p.add_argument("--by", metavar="NAME", help="approver (default: the configured rater)")
    force_option(p)
    p.set_defaults(handler=_approve)

    p = sub.add_parser("gate", help="exit 1 when a judge falls below a rubric file's thresholds")
    db_option(p)
    p.add_argument("file", type=Path, metavar="RUBRIC.toml")
    p.add_argument(
        "--run", action="store_true", help="first ask the judge for any missing verdicts"
    )
    p.add_argument("--concurrency", type=int, default=8, metavar="N")
    p.add_argument("--gold", metavar="RATER")
    api_base_option(p)
    p.set_defaults(handler=_gate)


def api_base_option(p: argparse.ArgumentParser) -> None:
    """`--api-base URL` on a command that reads a judge from a rubric TOML."""
    p.add_argument(
        "--api-base",
        action="append",
        default=[],
        metavar="URL",
        help="an endpoint you allow the judge to send the API key to (repeatable)",
    )


def _judge(store: Store, rubric: Rubric, name: str | None) -> Judge:
    from evaltui.store.verdicts import get_judge

    return get_judge(store, rubric.name, name)


def _emit(report: dict[str, Any], as_json: bool, render: Any) -> int:
    """Print a report as one JSON object (--json) or as text; exit code 0."""
    echo(json_text(report) if as_json else render(report))
    return 0


def parse_params(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` model parameters; values read as JSON where they parse (numbers, true).

    >>> parse_params(["temperature=0", "seed=7", "stop=END"])
    {'temperature': 0, 'seed': 7, 'stop': 'END'}
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {item!r}: expected KEY=VALUE, e.g. temperature=0")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    check_params(params, "--param ")
    return params


def _set(args: argparse.Namespace) -> int:
    from evaltui import files
    from evaltui.judge.prompt import check_template, default_template

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.rubric)
        if args.prompt_file is not None:
            prompt = files.read_text(args.prompt_file, "prompt template file")
        else:
            prompt = default_template(rubric)
        check_template(prompt, rubric.kind)
        judge = Judge(
            name=args.judge,
            rubric=rubric.name,
            model=args.model,
            api_base=args.api_base,
            prompt=prompt,
            params=parse_params(args.param),
            few_shot=tuple(c.strip() for c in args.few_shot.split(",") if c.strip()),
        )
        added = store.save_judge(judge)
    state = "added" if added else "already stored"
    echo(f"judge {field(judge.name)} of {rubric.name}: version {judge.version} {state}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from evaltui.judge import runner
    from evaltui.judge.approval import few_shot_examples, labelled_calls
    from evaltui.judge.calibration import gold_labels

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.rubric)
        judge = _judge(store, rubric, args.judge)
        check_served_judge(args, store, judge)
        examples = few_shot_examples(
            store, rubric, judge, gold_rater=args.gold, seed=args.split_seed
        )
        if args.cases == "labelled":
            calls, n_cases = labelled_calls(
                store, rubric, judge, gold_rater=args.gold, retry_errors=args.retry_errors
            )
        else:
            gold = gold_labels(store, rubric, args.gold)
            ids = store.case_ids()
            if args.cases == "unlabelled":
                ids = [c for c in ids if c not in gold.values]
            cases = store.cases_by_id(ids)
            calls = runner.plan(store, judge, rubric, cases, retry_errors=args.retry_errors)
            n_cases = len(cases)
        options = runner.RunOptions(
            concurrency=args.concurrency, timeout=args.timeout, retries=args.retries
        )
        echo(
            f"judge {field(judge.name)} ({field(judge.model)}) "
            f"on {n_cases} case(s) of {rubric.name}: "
            f"{len(calls)} call(s) to make",
            file=sys.stderr,
        )
        step = max(1, len(calls) // 20)

        def show(_: Any, progress: runner.Progress) -> None:
            if progress.finished % step == 0 or progress.finished == progress.total:
                waiting = (
                    f", {progress.waiting} being made by another run" if progress.waiting else ""
                )
                echo(
                    f"  {progress.finished}/{progress.total} verdicts, {progress.errors} error(s), "
                    f"${progress.cost_usd:.4f}{waiting}",
                    file=sys.stderr,
                )

        run = runner.run(
            store, judge, rubric, calls, options=options, examples=examples,
            on_verdict=show, on_wait=_wait_notice(),
        )  # fmt: skip
        progress = asyncio.run(run)
    unknown = (
        f" (+{progress.cost_unknown} call(s) of unknown cost)" if progress.cost_unknown else ""
    )
    elsewhere = (
        f"; {progress.elsewhere} more stored by another run at the same time"
        if progress.elsewhere
        else ""
    )
    echo(
        f"{progress.done} verdict(s) stored, {progress.errors} error verdict(s), "
        f"{progress.retries} retried call(s), cost ${progress.cost_usd:.4f}{unknown}{elsewhere}"
    )
    return 0


def _wait_notice() -> Callable[[Any], None]:
    """A callback that says so on stderr each time a run starts waiting for another run."""
    waited = 0

    def notice(progress: Any) -> None:
        nonlocal waited
        if progress.waiting and not waited:
            print(
                f"  another run is making {progress.waiting} of these call(s); "
                "waiting for its verdicts",
                file=sys.stderr,
            )
        waited = progress.waiting

    return notice


def _report(args: argparse.Namespace) -> int:
    from evaltui.judge.calibration import calibration_report
    from evaltui.judge.text import render_report

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.rubric)
        judge = _judge(store, rubric, args.judge)
        report = calibration_report(
            store, rubric, judge, gold_rater=args.gold, split=args.split,
            seed=args.split_seed, resamples=args.resamples,
        )  # fmt: skip
    return _emit(report, args.json, render_report)


def _history(args: argparse.Namespace) -> int:
    from evaltui.judge.text import render_history
    from evaltui.judge.versions import history

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.rubric)
        report = history(
            store, rubric, gold_rater=args.gold, split=args.split, seed=args.split_seed
        )
    return _emit(report, args.json, render_history)


def _compare(args: argparse.Namespace) -> int:
    from evaltui.judge.text import render_comparison
    from evaltui.judge.versions import compare
    from evaltui.store.verdicts import judge_by_version

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.rubric)
        before = judge_by_version(store, rubric.name, args.before)
        after = judge_by_version(store, rubric.name, args.after)
        report = compare(
            store, rubric, before, after, gold_rater=args.gold, split=args.split,
            seed=args.split_seed, resamples=args.resamples,
        )  # fmt: skip
    return _emit(report, args.json, render_comparison)


def _import(args: argparse.Namespace) -> int:
    from evaltui.ingest.labels import parse_values
    from evaltui.ingest.verdicts import import_verdicts

    with open_store(args, create=False) as store:
        result = import_verdicts(
            store, args.file, rubric=args.rubric, judge_name=args.judge, model=args.model,
            case_id_column=args.case_id, value_column=args.value,
            values=parse_values(args.values) if args.values else None,
            critique_column=args.critique,
        )  # fmt: skip
    echo(result.summary())
    return 0


def _approve(args: argparse.Namespace) -> int:
    from evaltui import config, files, rubric_toml
    from evaltui.judge.approval import approve

    if args.by is not None and not args.by.strip():
        raise InvalidInput("--by must name who approves; it is empty")
    with open_store(args, create=False) as store:
        # On a served project the token says who is approving.
        approver = args.by or store.rater or config.load(args.config).rater
        rubric = store.get_rubric(args.rubric)
        judge = _judge(store, rubric, args.judge)
        out = args.out or Path("rubrics") / f"{rubric.name}.toml"
        # Before the approval, which marks the rubric approved and counts a look at test.
        files.check_target(out, files.TOML, force=args.force, new_folder=True)
        file, report = approve(
            store, rubric, judge, approver=approver, gold_rater=args.gold,
            seed=args.split_seed, resamples=args.resamples,
        )  # fmt: skip
    files.make_folder(out.parent)
    rubric_toml.dump(file, out, force=args.force)
    name = field(judge.name)
    echo(f"{out}: {rubric.name} approved with judge {name} ({judge.version[:19]})")
    echo(f"  test split: {report['reading']} (test set viewed {report['test_views']} times)")
    return 0


def check_file_judge(args: argparse.Namespace, store: Store, judge: Judge) -> None:
    """Refuse a judge read from `args.file` whose endpoint the user has not chosen."""
    from evaltui import config
    from evaltui.judge.trust import check_endpoints, chosen_endpoints

    # On a served project any rater's token can store a judge: its endpoint is no choice of yours.
    rubrics = sorted({r.name for r in store.rubrics()}) if store.server is None else []
    chosen = chosen_endpoints(
        given=args.api_base,
        configured=config.load(args.config).api_bases,
        stored=[j for name in rubrics for j in store.judges(name)],
    )
    check_endpoints(judge, chosen, str(args.file))


def check_served_judge(args: argparse.Namespace, store: Store, judge: Judge) -> None:
    """On a served project, refuse to run a judge whose endpoint this user has not chosen.

    Any token holder can store a judge there, so a judge's `api_base` is not
    the user's own choice until they make it (`--api-base`, config, environment).
    """
    if store.server is None:
        return
    from evaltui import config
    from evaltui.judge.trust import chosen_endpoints, endpoints, same_endpoint

    chosen = chosen_endpoints(given=args.api_base, configured=config.load(args.config).api_bases)
    for url in endpoints(judge):
        if same_endpoint(url) not in chosen:
            raise InvalidInput(
                f"judge {judge.name!r} sends its requests to {url!r}; on a served project any "
                "rater can set that, so the API key goes there only when you choose it: pass "
                f"--api-base {shlex.quote(url)} (or add it to api_bases in your config)"
            )


def _gate(args: argparse.Namespace) -> int:
    from evaltui import rubric_toml
    from evaltui.judge import runner
    from evaltui.judge.approval import (
        APPROVAL_SPLIT,
        few_shot_examples,
        gate_checks,
        gate_notes,
        judge_warnings,
        labelled_calls,
        threshold_warnings,
    )
    from evaltui.judge.calibration import calibration_report
    from evaltui.rubric_toml import ThresholdsSection
    from evaltui.store.verdicts import GATE, answered, approved_judge_version

    parsed = rubric_toml.load(args.file)
    judge = parsed.to_judge()
    if judge is None:
        raise InvalidInput(f"{args.file}: no [judge] section: nothing to gate")
    thresholds = parsed.thresholds or ThresholdsSection()
    seed = parsed.calibration.split_seed if parsed.calibration else None
    # The gate reads the project and may cache the file's verdicts in it, but it never
    # stores the file's judge: that would make it the rubric's newest, the one approved next.
    with open_store(args, create=False) as store:
        rubric = store.get_rubric(parsed.rubric.name)
        stored = [j for j in store.judges(rubric.name) if j.version == judge.version]
        judge = stored[0] if stored else judge
        if args.run:
            check_file_judge(args, store, judge)
            examples = few_shot_examples(store, rubric, judge, gold_rater=args.gold, seed=seed or 0)
            calls, _ = labelled_calls(store, rubric, judge, gold_rater=args.gold)
            options = runner.RunOptions(concurrency=args.concurrency)
            run = runner.run(
                store, judge, rubric, calls, options=options, examples=examples,
                on_wait=_wait_notice(),
            )  # fmt: skip
            asyncio.run(run)
        elif not stored and not answered(store, judge.version):
            raise InvalidInput(
                f"{args.file}: judge {judge.version[:19]} has never run on {args.db}; "
                "use --run to run it, or import the file with `evaltui rubric import`"
            )
        report = calibration_report(
            store, rubric, judge, gold_rater=args.gold, split=APPROVAL_SPLIT,
            seed=seed or 0, purpose=GATE,
        )  # fmt: skip
        approved = approved_judge_version(store, rubric.name)
    for warning in threshold_warnings(thresholds) + judge_warnings(
        judge, parsed.calibration, approved
    ):
        print(f"warn {warning}")
    for note in gate_notes(report, parsed.calibration):
        echo(f"note {note}")
    checks = gate_checks(report, thresholds)
    for check in checks:
        echo(f"{'ok  ' if check.ok else 'FAIL'} {check.text}")
    failed = [c for c in checks if not c.ok]
    if failed:
        echo(f"gate: {rubric.name} fails {len(failed)} of {len(checks)} check(s)")
        return 1
    echo(f"gate: {rubric.name} passes ({report['n']} test cases)")
    return 0

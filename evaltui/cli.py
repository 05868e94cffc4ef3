"""The command line: parse, open the store, call the core, print.

Errors are one readable line on stderr and a non-zero exit, never a traceback
(set EVALTUI_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from evaltui import __version__
from evaltui.cli_store import db_option, force_option, open_store, project_target
from evaltui.errors import EvaltuiError, InvalidInput
from evaltui.models import CaseKind
from evaltui.store import Store
from evaltui.text import echo, field, json_text, literal

if TYPE_CHECKING:
    from evaltui.team import Served

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, one_line(f"{self.prog}: {message} (see '{self.prog} --help')") + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render `--help`)."""
    parser = _Parser(
        prog="evaltui",
        description="Label LLM outputs in the terminal, calibrate raters and judges, ship rubrics.",
    )
    parser.add_argument("--version", action="version", version=f"evaltui {__version__}")
    db_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="copy the sample data into a fresh project and open it")
    p.add_argument(
        "--dir", type=Path, help="where to build the demo project (default: a new temp folder)"
    )
    p.add_argument("--no-ui", action="store_true", help="build the project and print its path only")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("label", help="label cases under a rubric in the TUI")
    db_option(p)
    p.add_argument("--rubric", required=True, metavar="NAME")
    p.add_argument("--rater", metavar="NAME", help="who is labelling (default: config, else $USER)")
    p.add_argument("--session", metavar="NAME", help="label a calibration session's cases only")
    p.set_defaults(handler=_label)

    p = sub.add_parser("agreement", help="how well raters agree on a rubric")
    db_option(p)
    p.add_argument("--rubric", required=True, metavar="NAME")
    p.add_argument(
        "--raters", metavar="A,B,...", help="raters to compare (default: every human rater)"
    )
    p.add_argument("--by", metavar="FIELD", help="also per slice: split, tag, or a metadata field")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(handler=_agreement)

    session = sub.add_parser("session", help="calibration sessions").add_subparsers(
        dest="session_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    p = session.add_parser("create", help="sample cases for two or more raters to label blind")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--rubric", required=True, metavar="NAME")
    p.add_argument("--raters", required=True, metavar="A,B", help="comma-separated rater names")
    p.add_argument("--sample", type=int, metavar="N", help="how many cases (default: all)")
    p.add_argument("--by", metavar="FIELD", help="stratify by split, tag or a metadata field")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    db_option(p)
    p.set_defaults(handler=_session_create)

    p = sub.add_parser("serve", help="serve a project so several raters label it at once")
    p.add_argument("path", nargs="?", type=project_target, default=None, metavar="DB")
    db_option(p)
    p.add_argument("--host", help="address to listen on (default: localhost, this machine only)")
    p.add_argument("--port", type=int, default=9494, help="port to listen on (default 9494)")
    p.add_argument(
        "--rater",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="print a new token for each rater named; an earlier token of theirs stops working",
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("init", help="create an empty project file")
    p.add_argument("path", nargs="?", type=project_target, default=None, metavar="DB")
    db_option(p)
    p.set_defaults(handler=_init)

    p = sub.add_parser("import", help="import cases from JSONL, JSON, CSV or Parquet")
    p.add_argument("file", type=Path, metavar="FILE")
    db_option(p)
    p.add_argument(
        "--kind",
        choices=[k.value for k in CaseKind],
        help="single or pair (default: from the columns)",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="take a case field from a column; FIELD=A+B joins text columns",
    )
    p.add_argument(
        "--id",
        metavar="COLUMN",
        help="column holding the case id (default: id, else a content hash)",
    )
    p.add_argument("--split", metavar="NAME", help="put every imported case in this split")
    p.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="tag every imported case"
    )
    p.add_argument("--reason", metavar="TEXT", help="why these cases were added (provenance)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="import the valid records, list the rest"
    )
    p.set_defaults(handler=_import)

    labels = sub.add_parser("labels", help="labels made elsewhere").add_subparsers(
        dest="labels_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    p = labels.add_parser("import", help="import one rater's labels for a rubric")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--rater", required=True, metavar="NAME")
    p.add_argument("--rubric", required=True, metavar="NAME")
    db_option(p)
    p.add_argument(
        "--case-id", metavar="COLUMN", help="column naming the case (default: case_id or id)"
    )
    p.add_argument(
        "--value", metavar="COLUMN", help="column holding the label (default: label or value)"
    )
    p.add_argument(
        "--values", metavar="RAW=LABEL,...", help="map raw values to labels, e.g. 1=A,2=B,0=tie"
    )
    p.set_defaults(handler=_labels_import)

    export = sub.add_parser("export", help="write data out").add_subparsers(
        dest="export_command", metavar="WHAT", required=True, parser_class=_Parser
    )
    p = export.add_parser("labels", help="current labels with provenance (.jsonl, .csv, .parquet)")
    p.add_argument("out", type=Path, metavar="OUT")
    db_option(p)
    p.add_argument("--rubric", metavar="NAME")
    force_option(p)
    p.set_defaults(handler=_export_labels)

    from evaltui.cli_judge import api_base_option

    rubric = sub.add_parser("rubric", help="rubric TOML files").add_subparsers(
        dest="rubric_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    p = rubric.add_parser("import", help="add a rubric (and its judge) from TOML")
    p.add_argument("file", type=Path, metavar="FILE.toml")
    db_option(p)
    api_base_option(p)
    p.set_defaults(handler=_rubric_import)
    p = rubric.add_parser("export", help="write a rubric (and its judge) as TOML")
    p.add_argument("name", metavar="NAME")
    p.add_argument("out", type=Path, metavar="OUT.toml")
    db_option(p)
    force_option(p)
    p.set_defaults(handler=_rubric_export)

    from evaltui.cli_judge import add_commands

    add_commands(sub, db_option, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = getattr(args, "handler", _home)
    try:
        return handler(args)
    except EvaltuiError as error:
        echo(f"evaltui: {one_line(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        echo("evaltui: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a file that cannot be written (a full disk, say) or read
        if os.environ.get("EVALTUI_DEBUG"):
            raise
        where = f"{error.filename}: " if error.filename else ""
        echo(f"evaltui: {one_line(where + (error.strerror or str(error)))}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug, but the user still gets one line
        if os.environ.get("EVALTUI_DEBUG"):
            raise
        echo(
            f"evaltui: internal error: {type(error).__name__}: {one_line(str(error))} "
            "(run with EVALTUI_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 70


def one_line(message: str) -> str:
    """A message fit for one terminal line: line breaks as spaces, control characters as codes.

    >>> one_line("bad\\nthing \\x1b[2J")
    'bad thing \\\\x1b[2J'
    """
    return literal(re.sub(r"\r\n|[\r\n\t]", " ", message))


def _home(args: argparse.Namespace) -> int:
    return _run_ui(args)


def _named(option: str, value: str | None, what: str) -> None:
    """Refuse an option given an empty name (an unset shell variable, say)."""
    if value is not None and not value.strip():
        raise InvalidInput(f"{option} must name {what}; it is empty")


def _label(args: argparse.Namespace) -> int:
    _named("--rater", args.rater, "who is labelling")
    return _run_ui(args, label=(args.rubric, args.rater), session=args.session)


def _run_ui(
    args: argparse.Namespace,
    *,
    db: Path | None = None,
    label: tuple[str, str | None] | None = None,
    session: str | None = None,
) -> int:
    from evaltui import config

    settings = config.load(args.config)
    store = Store.open(db) if db else open_store(args)
    try:
        if store.rater is not None and label is not None and label[1] not in (None, store.rater):
            raise InvalidInput(
                f"this token belongs to {store.rater}; label as {store.rater}, "
                f"or connect with {label[1]}'s own token"
            )
        case_ids = None
        if label is not None:
            store.get_rubric(label[0])  # a clear error before the screen opens
        if session is not None:
            case_ids = store.session_case_ids(session)
        from evaltui.ui.app import EvaltuiApp  # the UI loads only when it is shown

        EvaltuiApp(store, settings, label=label, case_ids=case_ids).run()
    finally:
        store.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from evaltui.demo import build_demo_project

    db = build_demo_project(args.dir)
    if args.no_ui:
        echo(db)
        return 0
    code = _run_ui(args, db=db)
    echo(f"The demo project is kept at {db}; open it again with 'evaltui --db {db}'.")
    return code


def _agreement(args: argparse.Namespace) -> int:
    from evaltui.agreement import agreement_report, render_text

    raters = [r.strip() for r in args.raters.split(",") if r.strip()] if args.raters else None
    if args.resamples < 1:
        raise InvalidInput("--resamples must be at least 1")
    with open_store(args, create=False) as store:
        report = agreement_report(
            store, args.rubric, raters=raters, by=args.by, resamples=args.resamples, seed=args.seed
        )
    echo(json_text(report) if args.json else render_text(report))
    return 0


def _session_create(args: argparse.Namespace) -> int:
    from evaltui.sessions import create_session

    raters = [r.strip() for r in args.raters.split(",") if r.strip()]
    with open_store(args, create=False) as store:
        session = create_session(
            store, args.name, args.rubric, raters, sample=args.sample, by=args.by, seed=args.seed
        )
    name = field(session.name)
    echo(
        f"session {name}: {len(session.case_ids)} cases of {session.rubric} for "
        f"{', '.join(field(r) for r in session.raters)} (seed {session.seed}"
        + (f", stratified by {field(session.by_field)}" if session.by_field else "")
        + ")"
    )
    if args.sample is not None and args.sample > len(session.case_ids):
        echo(
            f"  --sample {args.sample} asked for more cases than rubric {field(session.rubric)} "
            f"has: the session holds all {len(session.case_ids)}"
        )
    for rater in session.raters:
        command = ["evaltui", "label", "--rubric", session.rubric, "--rater", rater,
                   "--session", session.name]  # fmt: skip
        echo("  " + field(shlex.join(command)))
    return 0


def _init(args: argparse.Namespace) -> int:
    path = args.path or args.db
    if not isinstance(path, Path):
        raise InvalidInput(f"{path} is a served project; 'init' makes a project file")
    existed = path.exists()
    with Store.open(path) as store:
        version = store.schema_version
    echo(f"{path}: {'already a project' if existed else 'created'} (schema {version})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import signal
    import time

    from evaltui import team

    path = args.path or args.db
    if not isinstance(path, Path):
        raise InvalidInput(f"{path} is a server already; serve a project file")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl+C does
    with Store.open(path, create=False) as store:
        served = team.start(store, host=args.host, port=args.port, raters=args.rater)
        try:
            _print_served(path, served)
            # Short sleeps, not pause(): a signal may land on one of DuckDB's
            # threads, and the main thread must wake up to act on it.
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            team.stop(store, served)
    echo(f"Stopped serving {path}.")
    return 0


def _print_served(path: Path, served: Served) -> None:
    where = "this machine only" if served.address.loopback else "reachable from other machines"
    echo(f"Serving {path} at {served.address} ({where}). Stop with Ctrl+C.")
    if not served.address.loopback:
        echo(
            "Traffic to this port is not encrypted: on a shared network, put a TLS proxy "
            "in front of it, or serve on localhost and have raters use ssh -L."
        )
    if served.issued:
        echo("Each token is shown only this once. It lets its holder read the project and")
        echo("label in their own name; hand it only to that rater.")
        width = max(map(len, served.issued))
        for rater, token in served.issued.items():
            echo(f"  {rater:<{width}}  {served.command(token)}")
    earlier = [r for r in served.holders if r not in served.issued]
    if earlier:
        echo(
            f"Earlier tokens still valid: {', '.join(earlier)} "
            "(--rater NAME prints a new one and retires the old)."
        )
    sys.stdout.flush()


def _import(args: argparse.Namespace) -> int:
    from evaltui.ingest import import_cases, parse_map

    mapping = parse_map(args.map)
    if args.id:
        if "id" in mapping:
            raise InvalidInput("give the id column with --id or --map id=COLUMN, not both")
        mapping["id"] = [args.id]
    with open_store(args) as store:
        report = import_cases(
            store,
            args.file,
            kind=CaseKind(args.kind) if args.kind else None,
            mapping=mapping,
            split=args.split,
            tags=args.tag,
            reason=args.reason,
            skip_invalid=args.skip_invalid,
        )
    for line in report.skipped:
        echo(f"skipped {line}", file=sys.stderr)
    for line in report.converted:
        echo(f"note: {line}", file=sys.stderr)
    echo(report.summary())
    return 0


def _labels_import(args: argparse.Namespace) -> int:
    from evaltui.ingest import import_labels, parse_values

    _named("--rater", args.rater, "whose labels these are")
    with open_store(args, create=False) as store:
        report = import_labels(
            store,
            args.file,
            rater=args.rater,
            rubric=args.rubric,
            case_id_column=args.case_id,
            value_column=args.value,
            values=parse_values(args.values) if args.values else None,
        )
    echo(report.summary())
    return 0


def _export_labels(args: argparse.Namespace) -> int:
    from evaltui.ingest import export_labels

    with open_store(args, create=False) as store:
        count = export_labels(store, args.out, rubric=args.rubric, force=args.force)
    echo(f"{args.out}: {count} label(s)")
    return 0


def _rubric_import(args: argparse.Namespace) -> int:
    from evaltui import rubric_toml
    from evaltui.cli_judge import check_file_judge

    parsed = rubric_toml.load(args.file)
    rubric = parsed.to_rubric()
    judge = parsed.to_judge()
    with open_store(args) as store:
        if judge is not None:
            check_file_judge(args, store, judge)
        added = store.save_rubric(rubric)
        if judge is not None:
            store.save_judge(judge)
    state = "added" if added else "unchanged"
    echo(f"rubric {rubric.name} version {rubric.version}: {state}")
    return 0


def _rubric_export(args: argparse.Namespace) -> int:
    from evaltui import rubric_toml

    with open_store(args, create=False) as store:
        rubric = store.get_rubric(args.name)
        judges = [j for j in store.judges(rubric.name) if j.name == "default"]
    rubric_toml.dump(
        rubric_toml.RubricFile.from_models(rubric, judges[-1] if judges else None),
        args.out,
        force=args.force,
    )
    echo(f"{args.out}: rubric {rubric.name} version {rubric.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

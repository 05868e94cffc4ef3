"""The judge screen: edit the prompt and model, run over the human-labelled cases, read the
figures and disagreements, compare with earlier versions, approve."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Label,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.worker import Worker, WorkerState

from evaltui.errors import EvaltuiError
from evaltui.judge.calibration import ReportSplit, calibration_report
from evaltui.judge.prompt import check_template, default_template
from evaltui.judge.text import num, render_comparison, short
from evaltui.models import Judge, Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.verdicts import get_judge
from evaltui.text import edited, field, literal
from evaltui.ui import render
from evaltui.ui.guard import guarded, notice, show_error


class VerdictStored(Message):
    """A run has one more verdict (its own, or another run's), or waits for other runs."""

    def __init__(
        self, done: int, total: int, errors: int, cost_usd: float, waiting: int = 0
    ) -> None:
        super().__init__()
        self.done = done
        self.total = total
        self.errors = errors
        self.cost_usd = cost_usd
        self.waiting = waiting
        """Calls another run is making, that this run waits for."""


class JudgeScreen(Screen[None]):
    """Iterate a rubric's judge against the humans until it can be approved."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run", id="judge.run", priority=True,
                tooltip="Save this prompt and model as a judge version and run it on the labelled cases"),
        Binding("escape", "back", "Back / cancel run", id="judge.back",
                tooltip="Cancel a run in progress; otherwise go back"),
        Binding("f2", "tab('prompt')", "Prompt", id="judge.prompt_tab", priority=True),
        Binding("f3", "tab('results')", "Results", id="judge.results_tab", priority=True),
        Binding("ctrl+t", "toggle_split", "Dev/test", id="judge.split", priority=True,
                tooltip="Read the figures on the test split (each look is counted)"),
        Binding("ctrl+o", "history", "Versions", id="judge.history", priority=True,
                tooltip="Every judge version on the same cases; Enter compares with this one"),
        Binding("ctrl+g", "approve", "Approve", id="judge.approve", priority=True,
                tooltip="Write rubrics/<name>.toml with the judge and its test-split figures"),
    ]  # fmt: skip

    def __init__(self, store: Store, rubric: Rubric, rater: str, *, concurrency: int = 8) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.rater = rater
        self.concurrency = concurrency
        self.judge: Judge | None = None
        self.split: ReportSplit = "dev"
        self.report: dict[str, Any] = {}
        self.running: Worker[None] | None = None
        try:
            self.judge = get_judge(store, rubric.name)
        except EvaltuiError:
            self.judge = None

    def compose(self) -> ComposeResult:
        yield Static(id="judge-head", markup=False)
        with TabbedContent(initial="prompt", id="judge-tabs"):
            with TabPane("Prompt (F2)", id="prompt"):
                with Horizontal(id="judge-model-row"):
                    yield Label("model", classes="field")
                    yield Input(id="judge-model", placeholder="e.g. openai/gpt-4o-mini")
                    yield Label("api base", classes="field")
                    yield Input(id="judge-api-base", placeholder="optional, self-hosted server URL")
                yield TextArea(id="judge-prompt", soft_wrap=True, show_line_numbers=False)
            with TabPane("Results (F3)", id="results"):
                with VerticalScroll(id="judge-figures-scroll"):
                    yield Static(id="judge-figures", markup=False)
                yield DataTable(id="judge-disagreements", cursor_type="row", zebra_stripes=True)
        with Vertical(id="judge-run"):
            yield ProgressBar(id="judge-progress", show_eta=False)
            yield Static(id="judge-status", markup=False)
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        judge = self.judge
        # Stored text, shown literally; reading it back gives the stored value if left as shown.
        self.query_one("#judge-model", Input).value = field(judge.model) if judge else ""
        self.query_one("#judge-api-base", Input).value = field(judge.api_base) if judge else ""
        prompt = judge.prompt if judge else default_template(self.rubric)
        self.query_one("#judge-prompt", TextArea).text = literal(prompt)
        table = self.query_one("#judge-disagreements", DataTable)
        table.add_columns("Case", "Human", "Judge", "Judge's critique", "Human note")
        self.query_one("#judge-model", Input).focus()
        self.query_one("#judge-progress", ProgressBar).display = False
        self.query_one("#judge-status", Static).update(
            Text("ctrl+r runs the judge on the human-labelled cases", style="dim")
        )
        self.refresh_figures()

    # Reading ---------------------------------------------------------------

    def refresh_figures(self) -> None:
        """Recompute the report for the current judge version and split."""
        head = f"judge of {self.rubric.name} ({self.rubric.kind.value})"
        if self.judge is None:
            self._head(f"{head}: none yet; enter a model, edit the prompt, ctrl+r to run")
            return
        try:
            self.report = calibration_report(
                self.store, self.rubric, self.judge, split=self.split, resamples=200,
                purpose="judge screen",
            )  # fmt: skip
        except EvaltuiError as error:
            self._head(f"{head}: {error}")
            return
        r = self.report
        self._head(
            f"{head} · {self.judge.name} {self.judge.version[:15]} · {self.split} split · "
            f"test set viewed {r['test_views']} time(s)"
        )
        self.query_one("#judge-figures", Static).update(Text(_figures_text(r)))
        table = self.query_one("#judge-disagreements", DataTable)
        table.clear()
        for d in r["disagreements"]:
            cells = [
                d["case_id"],
                d["human"],
                d["judge"],
                short(d["critique"], 60),
                short(d["note"], 60),
            ]
            table.add_row(*(Text(field(c)) for c in cells), key=d["case_id"])

    def _head(self, text: str) -> None:
        self.query_one("#judge-head", Static).update(Text(render.literal(text), style="bold"))

    # Running ---------------------------------------------------------------

    def _edited_judge(self) -> Judge:
        base = self.judge
        model = self.query_one("#judge-model", Input).value.strip()
        api_base = self.query_one("#judge-api-base", Input).value.strip()
        prompt = self.query_one("#judge-prompt", TextArea).text
        if base is not None:
            model = edited(model, base.model.strip(), one_line=True)
            api_base = edited(api_base, base.api_base.strip(), one_line=True)
            prompt = edited(prompt, base.prompt)
        if not model:
            raise EvaltuiError("enter a model first, e.g. openai/gpt-4o-mini")
        check_template(prompt, self.rubric.kind)
        return Judge(
            name=base.name if base else "default",
            rubric=self.rubric.name,
            model=model,
            api_base=api_base,
            prompt=prompt,
            params=base.params if base else {"temperature": 0},
            few_shot=base.few_shot if base else (),
        )

    def action_run(self) -> None:
        if self.running is not None and self.running.is_running:
            notice(self, "A run is in progress; Esc cancels it")
            return
        try:
            judge = self._edited_judge()
            from evaltui.judge.approval import few_shot_examples, labelled_calls

            examples = few_shot_examples(self.store, self.rubric, judge, gold_rater=None, seed=0)
            calls, cases = labelled_calls(self.store, self.rubric, judge, gold_rater=None)
        except EvaltuiError as error:
            show_error(self, error)
            return
        self.store.save_judge(judge)
        self.judge = judge
        self.refresh_figures()
        if not calls:
            self._status(f"every one of the {cases} labelled case(s) already has a verdict")
            return
        bar = self.query_one("#judge-progress", ProgressBar)
        bar.update(total=len(calls), progress=0)
        self._status(f"running {len(calls)} call(s) on {cases} labelled case(s)… Esc cancels")
        self.action_tab("results")
        bar.display = True
        self.running = self._run(judge, calls, examples)

    @work(exclusive=True, group="judge-run", exit_on_error=False)
    async def _run(self, judge: Judge, calls: list[Any], examples: list[Any]) -> None:
        from evaltui.judge.runner import Progress, RunOptions, run

        def stored(_: Any, p: Progress) -> None:
            self.post_message(VerdictStored(p.finished, p.total, p.errors, p.cost_usd, p.waiting))

        await run(
            self.store,
            judge,
            self.rubric,
            calls,
            options=RunOptions(concurrency=self.concurrency),
            examples=examples,
            on_verdict=stored,
            on_wait=lambda p: stored(None, p),
        )

    @guarded
    def on_verdict_stored(self, message: VerdictStored) -> None:
        self.query_one("#judge-progress", ProgressBar).update(progress=message.done)
        waiting = f" · {message.waiting} being made by another run" if message.waiting else ""
        self._status(
            f"{message.done}/{message.total} verdicts · {message.errors} error(s) · "
            f"${message.cost_usd:.4f} so far{waiting} · Esc cancels"
        )
        if message.done % max(1, message.total // 10) == 0:
            self.refresh_figures()

    @guarded
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.running:
            return
        if event.state is WorkerState.SUCCESS:
            self._status("run finished")
        elif event.state is WorkerState.CANCELLED:
            self._status("run cancelled: verdicts so far are kept; ctrl+r resumes")
        elif event.state is WorkerState.ERROR:
            error = event.worker.error
            self._status(f"run stopped: {error}")
            notice(self, str(error), severity="error")
        else:
            return
        self.refresh_figures()

    def _status(self, text: str) -> None:
        self.query_one("#judge-status", Static).update(Text(render.literal(text)))

    def action_back(self) -> None:
        if self.running is not None and self.running.is_running:
            self.running.cancel()
            return
        self.app.pop_screen()

    # Other views -------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = "#judge-disagreements" if tab == "results" else "#judge-model"
        self.query_one(target).focus()

    def action_toggle_split(self) -> None:
        self.split = "test" if self.split == "dev" else "dev"
        self.refresh_figures()
        notice(self, f"figures on the {self.split} split")

    def action_history(self) -> None:
        self.app.push_screen(HistoryScreen(self.store, self.rubric, self.judge, self.split))

    def action_approve(self) -> None:
        from evaltui.ui.screens.modals import PromptScreen

        if self.judge is None:
            notice(self, "run a judge before approving it", severity="error")
            return

        def write(path: str | None) -> None:
            if path:
                self._approve_at(Path(path))

        self.app.push_screen(
            PromptScreen(
                "Approve: figures are read on the test split (counted). Write the rubric TOML to",
                value=f"rubrics/{self.rubric.name}.toml",
            ),
            write,
        )

    def _approve_at(self, path: Path, *, replace: bool = False) -> None:
        """Approve into `path`; an existing rubric TOML there is replaced once confirmed."""
        from evaltui import files
        from evaltui.ui.screens.modals import PromptScreen

        if replace or not files.replaceable(path, files.TOML):
            self._approve(path, force=replace)
            return

        def confirm(answer: str | None) -> None:
            if answer:
                self._approve_at(Path(answer), replace=Path(answer) == path)

        self.app.push_screen(
            PromptScreen(f"{path} exists: Enter replaces it, Esc keeps it", value=str(path)),
            confirm,
        )

    def _approve(self, path: Path, *, force: bool = False) -> None:
        from evaltui import files, rubric_toml
        from evaltui.judge.approval import approve

        assert self.judge is not None
        try:
            # Checked before the approval, which marks the rubric approved and counts a look.
            files.check_target(path, files.TOML, force=force, new_folder=True)
            file, report = approve(self.store, self.rubric, self.judge, approver=self.rater)
            files.make_folder(path.parent)
            rubric_toml.dump(file, path, force=force)
        except (EvaltuiError, OSError) as error:
            show_error(self, error)
            return
        notice(self, f"Approved: wrote {path} (test κ {report['judge_kappa']})")
        self.refresh_figures()

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        case_id = str(event.row_key.value)
        found = [d for d in self.report.get("disagreements", []) if d["case_id"] == case_id]
        if found:
            self.app.push_screen(DisagreementScreen(self.store, self.rubric, found[0]))


def _figures_text(r: dict[str, Any]) -> str:
    ci = r["judge_kappa_ci"]
    lines = [
        f"n {r['n']} · errors {r['errors']} · not run {r['pending']} · gold: {field(r['gold'])}",
        f"judge κ {num(r['judge_kappa'])}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""),
    ]
    if r["kind"] == "binary":
        lines.append(f"TPR {num(r['tpr'])} · TNR {num(r['tnr'])} (positive class: pass)")
    else:
        lines.append(
            f"position consistency {num(r['position_consistency'])} · "
            f"first-slot win rate {num(r['first_slot_win_rate'])}"
        )
    if r.get("human_kappa") is not None:
        lines.append(
            f"human κ {num(r['human_kappa'])} ({', '.join(map(field, r['human_raters']))})"
        )
    cost, latency = r["cost_usd"], r["latency_ms_p50"]
    lines.append(
        f"cost {'unknown' if cost is None else f'${cost:.4f}'} · latency p50 "
        f"{'—' if latency is None else f'{latency:.0f} ms'}"
    )
    labels, matrix = r["confusion"]["labels"], r["confusion"]["matrix"]
    lines.append(" " * 11 + "".join(f"{'judge ' + c:>11}" for c in labels))
    for label, row in zip(labels, matrix, strict=True):
        lines.append(f"{'human ' + label:<11}" + "".join(f"{v:>11}" for v in row))
    lines.append(r["reading"])
    return "\n".join(lines)


class DisagreementScreen(ModalScreen[None]):
    """One disagreement: the case, the human label and note, the judge's verdict and critique."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="disagreement.back"),
    ]

    def __init__(self, store: Store, rubric: Rubric, row: dict[str, Any]) -> None:
        super().__init__()
        self.case = store.get_case(row["case_id"])
        self.rubric = rubric
        self.row = row

    def compose(self) -> ComposeResult:
        case, row = self.case, self.row
        parts = render.case_view(case, pairwise=self.rubric.kind is RubricKind.pairwise)
        parts += [
            Text(f"\nhuman: {row['human']}", style="bold"),
            Text(render.literal(row["note"] or "(no note)")),
            Text(f"\njudge: {row['judge']}", style="bold"),
            Text(render.literal(row["critique"] or "(no critique)")),
        ]
        with VerticalScroll(classes="dialog adjudicate"):
            yield Static(Group(*parts), markup=False)
        yield Footer()


class HistoryScreen(ModalScreen[None]):
    """Every judge version of the rubric on the same cases; Enter compares one with the current."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="history.back"),
    ]

    def __init__(
        self, store: Store, rubric: Rubric, current: Judge | None, split: ReportSplit
    ) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.current = current
        self.split = split

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor"):
            yield Static(id="history-title", markup=False)
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield Static(id="comparison", markup=False)
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        from evaltui.judge.versions import history

        report = history(self.store, self.rubric, split=self.split)
        self.query_one("#history-title", Static).update(
            Text(
                f"judge versions on the {report['common_cases']} {self.split} case(s) every run "
                "version answered; Enter compares with the current one"
            )
        )
        table = self.query_one("#history", DataTable)
        table.add_columns("Version", "Name", "Model", "n", "Errors", "κ", "TPR", "TNR")
        for v in report["versions"]:
            cells = [v["version"][:15], v["name"], v["model"]]
            if v["run"]:
                cells += [str(v["n"]), str(v["errors"]), num(v["judge_kappa"]),
                          num(v.get("tpr")), num(v.get("tnr"))]  # fmt: skip
            else:
                cells += ["not run", "", "", "", ""]
            table.add_row(*(Text(field(c)) for c in cells), key=v["version"])
        table.focus()

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from evaltui.judge.versions import compare
        from evaltui.store.verdicts import judge_by_version

        event.stop()
        out = self.query_one("#comparison", Static)
        if self.current is None or str(event.row_key.value) == self.current.version:
            out.update(Text("pick another version to compare with the current one"))
            return
        before = judge_by_version(self.store, self.rubric.name, str(event.row_key.value))
        report = compare(
            self.store, self.rubric, before, self.current, split=self.split, resamples=500
        )
        out.update(Text(render_comparison(report)))

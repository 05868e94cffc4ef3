"""A label the caller was told about survives the process being killed (SIGKILL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from evaltui.models import Rubric, RubricKind
from evaltui.store import Store

WRITER = textwrap.dedent(
    """
    import sys
    from evaltui.models import Rubric, RubricKind
    from evaltui.store import Store

    store = Store.open(sys.argv[1])
    rubric = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
    i = 0
    while True:  # until killed
        label = store.add_label(f"c{i % 50}", rubric, "alice", "pass" if i % 3 else "fail",
                                note=f"note {i}", seconds=1.5)
        print(label.id, flush=True)  # reported only once add_label has returned
        i += 1
    """
)


def test_every_reported_label_survives_sigkill(db: Path) -> None:
    with Store.open(db) as store:
        store.save_rubric(Rubric(name="ok", kind=RubricKind.binary, question="Is it right?"))
        for i in range(50):
            store.cursor().execute(
                "INSERT INTO cases (id, kind, input, output, metadata, tags) "
                "VALUES (?, 'single', 'q', 'a', '{}', [])",
                [f"c{i}"],
            )
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    reported = []
    for line in writer.stdout:
        reported.append(line.strip())
        if len(reported) == 300:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    # Lines already in the pipe were reported too: the writer printed them after committing.
    reported += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]

    with Store.open(db) as store:
        stored = {row[0] for row in store.cursor().execute("SELECT id FROM labels").fetchall()}
    missing = [label_id for label_id in reported if label_id not in stored]
    assert len(reported) >= 300
    assert missing == []

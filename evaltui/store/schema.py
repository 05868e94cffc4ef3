"""The project file's schema as an ordered list of migrations.

Each migration moves the schema from version N-1 to N. They are applied in
order, each in its own transaction, and the reached version is recorded in
`meta`. Never edit a released migration: add a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

Migration = Sequence[str]

MIGRATIONS: list[Migration] = [
    # 1: cases, rubrics, raters, append-only labels.
    [
        """CREATE TABLE cases (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            input VARCHAR,
            messages JSON,
            output VARCHAR,
            output_a VARCHAR,
            output_b VARCHAR,
            metadata JSON,
            split VARCHAR,
            tags VARCHAR[],
            source VARCHAR,
            imported_at TIMESTAMP
        )""",
        """CREATE TABLE rubrics (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            question VARCHAR NOT NULL,
            pass_definition VARCHAR NOT NULL,
            fail_definition VARCHAR NOT NULL,
            checklist VARCHAR[] NOT NULL,
            examples_pass VARCHAR[] NOT NULL,
            examples_fail VARCHAR[] NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (name, version)
        )""",
        """CREATE TABLE raters (
            name VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        "CREATE SEQUENCE label_seq",
        """CREATE TABLE labels (
            id VARCHAR PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('label_seq'),
            case_id VARCHAR NOT NULL,
            rubric VARCHAR NOT NULL,
            rubric_version INTEGER NOT NULL,
            rater VARCHAR NOT NULL,
            value VARCHAR,
            note VARCHAR NOT NULL DEFAULT '',
            tags VARCHAR[] NOT NULL DEFAULT [],
            shown_swapped BOOLEAN,
            seconds DOUBLE,
            created_at TIMESTAMP NOT NULL,
            source VARCHAR
        )""",
        # The current label of a rater for a case under a rubric is its latest row;
        # a latest row with no value means the label was cleared (undone).
        """CREATE VIEW current_labels AS
            SELECT * EXCLUDE (rn) FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY case_id, rubric, rater ORDER BY seq DESC) AS rn
                FROM labels)
            WHERE rn = 1 AND value IS NOT NULL""",
    ],
    # 2: calibration sessions, failure modes, adjudications; case provenance reason.
    [
        "ALTER TABLE cases ADD COLUMN reason VARCHAR",
        """CREATE TABLE sessions (
            name VARCHAR PRIMARY KEY,
            rubric VARCHAR NOT NULL,
            raters VARCHAR[] NOT NULL,
            case_ids VARCHAR[] NOT NULL,
            blind BOOLEAN NOT NULL,
            seed BIGINT,
            by_field VARCHAR,
            created_at TIMESTAMP NOT NULL
        )""",
        "CREATE SEQUENCE failure_mode_seq",
        """CREATE TABLE failure_modes (
            id BIGINT PRIMARY KEY DEFAULT nextval('failure_mode_seq'),
            rubric VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE adjudications (
            id VARCHAR PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('label_seq'),
            case_id VARCHAR NOT NULL,
            rubric VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            cause VARCHAR NOT NULL,
            rationale VARCHAR NOT NULL DEFAULT '',
            adjudicator VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ],
    # 3: judges and their verdicts.
    [
        """CREATE TABLE judges (
            version VARCHAR PRIMARY KEY,
            rubric VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            api_base VARCHAR NOT NULL,
            prompt VARCHAR NOT NULL,
            params JSON NOT NULL,
            few_shot VARCHAR[] NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE verdicts (
            id VARCHAR PRIMARY KEY,
            judge_version VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            swapped BOOLEAN NOT NULL,
            value VARCHAR,
            critique VARCHAR NOT NULL,
            raw VARCHAR NOT NULL,
            error VARCHAR,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost_usd DOUBLE,
            latency_ms DOUBLE,
            created_at TIMESTAMP NOT NULL
        )""",
    ],
    # 4: cases a rater deferred ("flag for later"), append-only like labels.
    [
        """CREATE TABLE deferrals (
            seq BIGINT NOT NULL DEFAULT nextval('label_seq'),
            case_id VARCHAR NOT NULL,
            rubric VARCHAR NOT NULL,
            rater VARCHAR NOT NULL,
            deferred BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ],
    # 5: failure modes link to labels; a merged mode points at the mode it joined.
    [
        "ALTER TABLE failure_modes ADD COLUMN merged_into BIGINT",
        """CREATE TABLE failure_mode_links (
            label_id VARCHAR NOT NULL,
            mode_id BIGINT NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ],
    # 6: the locked train/dev/test split of each rubric, and every look at its test split.
    [
        """CREATE TABLE judge_splits (
            rubric VARCHAR PRIMARY KEY,
            seed BIGINT NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE test_views (
            rubric VARCHAR NOT NULL,
            judge_version VARCHAR NOT NULL,
            purpose VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        "ALTER TABLE judges ADD COLUMN source VARCHAR",
    ],
    # 7: team mode. Each rater's token, kept only as its sha256, and the check the
    # Quack server runs on every new connection (a macro, so the server can call it).
    # Column defaults go: a Quack client (DuckDB 1.5.5) cannot attach a database
    # whose tables have any, so every insert now gives each column its value.
    [
        *(
            f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT"
            for table, column in [
                ("labels", "seq"),
                ("labels", "note"),
                ("labels", "tags"),
                ("failure_modes", "id"),
                ("failure_modes", "description"),
                ("adjudications", "seq"),
                ("adjudications", "rationale"),
                ("deferrals", "seq"),
            ]
        ),
        """CREATE TABLE team_tokens (
            token_sha256 VARCHAR PRIMARY KEY,
            rater VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE MACRO evaltui_token_ok(quack_session, presented_token, quack_default_token) AS (
            EXISTS (SELECT 1 FROM team_tokens WHERE token_sha256 = sha256(presented_token))
        )""",
    ],
    # 8: claims on judge calls, so that runs at once (over a served project) never
    # ask for the same verdict twice. Append-only: a call's state is its row with the
    # highest attempt; taking over an expired claim, or releasing one, adds a row.
    [
        """CREATE TABLE judge_claims (
            judge_version VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            swapped BOOLEAN NOT NULL,
            attempt INTEGER NOT NULL,
            claimant VARCHAR NOT NULL,
            host VARCHAR NOT NULL,
            pid BIGINT NOT NULL,
            released BOOLEAN NOT NULL,
            verdicts INTEGER NOT NULL,
            claimed_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL,
            PRIMARY KEY (judge_version, case_id, swapped, attempt)
        )""",
    ],
    # 9: the token check leaves the file. `evaltui serve` makes its checks in an
    # in-memory catalog of its own, where no client can replace them; a macro in
    # the file could be replaced by anyone who could write to it, and outlived a
    # restart. (Either kind of macro, in case one was put in its place.)
    [
        "DROP MACRO IF EXISTS evaltui_token_ok",
        "DROP MACRO TABLE IF EXISTS evaltui_token_ok",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this evaltui writes."""

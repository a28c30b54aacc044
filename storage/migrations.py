"""The schema, as an append-only list of sqlite-utils migrations (see docs/architecture.md).

Never edit a migration that has shipped: databases in the wild have recorded it as applied (by
name). Change the schema by adding a new function. They are written, and so applied to a new
file, in number order; the numbers leave gaps so each topic's migrations stay together.
`sqlite-utils migrate DB storage/migrations.py` applies the same set from the command line.
This module imports nothing from storage/db.py: opening a database (db.py) runs these migrations,
never the other way round. One file past 500 lines on purpose: `sqlite-utils migrate` reads one
module, and one list in one place keeps the order visible.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlite_utils import Database, Migrations

from playground.verdicts import WINNERS
from storage.pairs import input_difference, pair_key, unvotable_reason

migrations = Migrations("playground")


@migrations()
def m001_initial_schema(db: Database) -> None:
    """models, generations, battles, votes with their keys and constraints."""
    db["models"].create(
        {
            "id": int, "model_id": str, "display_name": str, "backend": str, "path": str,
            "sha256": str, "n_params": int, "quantization": str, "context_length": int,
            "is_chat": int, "created_at": str,
        },
        pk="id",
        not_null=["model_id", "sha256", "created_at"],
        defaults={"sha256": ""},
        if_not_exists=True,
    )
    db["models"].create_index(["model_id", "sha256"], unique=True, if_not_exists=True)
    db["generations"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "session_id": str, "model_id": str,
            "model_sha256": str, "backend": str, "device": str, "mode": str, "preset": str,
            "rendered_prompt": str, "conversation": str, "output": str,
            "extracted_answer": str, "samples": str, "sampling": str,
            "n_prompt_tokens": int, "n_output_tokens": int, "ttft_s": float, "total_s": float,
            "finish_reason": str, "error": str, "source": str,
        },
        pk="id",
        not_null=["created_at", "tstamp", "model_id", "mode", "conversation", "output", "source"],
        if_not_exists=True,
    )
    db["battles"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "session_id": str,
            "left_generation_id": int, "right_generation_id": int,
            "left_model": str, "right_model": str, "left_mode": str, "right_mode": str,
            "anonymous": int, "source": str,
        },
        pk="id",
        foreign_keys=[
            ("left_generation_id", "generations", "id"),
            ("right_generation_id", "generations", "id"),
        ],
        not_null=[
            "created_at", "tstamp", "left_generation_id", "right_generation_id",
            "left_model", "right_model", "left_mode", "right_mode", "anonymous", "source",
        ],
        if_not_exists=True,
    )
    db["battles"].create_index(
        ["left_generation_id", "right_generation_id"], unique=True, if_not_exists=True
    )
    db["votes"].create(
        {
            "id": int, "battle_id": int, "winner": str, "note": str, "session_id": str,
            "created_at": str, "tstamp": float,
        },
        pk="id",
        foreign_keys=[("battle_id", "battles", "id")],
        not_null=["battle_id", "winner", "created_at", "tstamp"],
        if_not_exists=True,
    )
    db["votes"].create_index(["battle_id"], unique=True, if_not_exists=True)
    _add_winner_check(db)


def _add_winner_check(db: Database) -> None:
    """CHECK on votes.winner. sqlite-utils cannot declare CHECK constraints, so triggers."""
    allowed = ", ".join(f"'{w}'" for w in WINNERS)
    message = f"votes.winner must be one of {', '.join(WINNERS)}"
    for event in ("INSERT", "UPDATE OF winner"):
        name = "votes_winner_check_" + event.split()[0].lower()
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON votes "
            f"WHEN NEW.winner IS NULL OR NEW.winner NOT IN ({allowed}) "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


@migrations()
def m002_query_indexes(db: Database) -> None:
    """Indexes for the leaderboard, exports and per-session views."""
    db["battles"].create_index(["tstamp"], if_not_exists=True)
    db["battles"].create_index(["left_model", "right_model"], if_not_exists=True)
    db["battles"].create_index(["right_generation_id"], if_not_exists=True)
    db["votes"].create_index(["tstamp"], if_not_exists=True)
    db["generations"].create_index(["session_id"], if_not_exists=True)
    db["generations"].create_index(["model_id"], if_not_exists=True)


@migrations()
def m003_battles_import_key(db: Database) -> None:
    """battles.import_key: makes importing the same Arena file twice a no-op."""
    db["battles"].add_column("import_key", str)
    db["battles"].create_index(["import_key"], unique=True, if_not_exists=True)


@migrations()
def m004_lab_tables(db: Database) -> None:
    """lab_runs and lab_results: the emergence lab's batch evaluations (see playground/lab.py)."""
    db["lab_runs"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "name": str, "task_file": str,
            "task_hash": str, "n_items": int, "model_id": str, "model_n_params": int,
            "backend": str, "device": str, "mode": str, "preset": str, "family": str,
            "shots": int, "samples": int, "sampling": str, "seed": int, "status": str,
            "items_per_s": float, "config_key": str, "error": str,
        },
        pk="id",
        not_null=["created_at", "tstamp", "task_file", "task_hash", "n_items", "model_id", "mode",
                  "status", "config_key"],
        if_not_exists=True,
    )
    db["lab_runs"].create_index(["config_key"], if_not_exists=True)
    db["lab_runs"].create_index(["tstamp"], if_not_exists=True)
    db["lab_runs"].create_index(["model_id", "mode"], if_not_exists=True)
    db["lab_results"].create(
        {
            "id": int, "run_id": int, "item_index": int, "question": str, "gold": str,
            "prompt": str, "output": str, "extracted": str, "correct": int,
            "gold_logprob_mean": float, "gold_n_tokens": int, "n_prompt_tokens": int,
            "n_output_tokens": int, "total_s": float, "finish_reason": str, "error": str,
            "created_at": str, "tstamp": float,
        },
        pk="id",
        foreign_keys=[("run_id", "lab_runs", "id")],
        not_null=["run_id", "item_index", "question", "gold", "correct", "created_at", "tstamp"],
        if_not_exists=True,
    )
    db["lab_results"].create_index(["run_id", "item_index"], unique=True, if_not_exists=True)


# --- Preference data you can train on ---
# the input each answer had, provenance, one judgement per
# pair, votable answers only, append-only tables, tombstones. Rules in storage/pairs.py.

_APPEND_ONLY = ("generations", "battles", "votes", "vote_exclusions", "tombstones")
_UNFINISHED_SQL = "(g.finish_reason IN ('cancelled', 'error') OR coalesce(g.error, '') <> '')"


@migrations()
def m005_generation_inputs_and_provenance(db: Database) -> None:
    """generations: input fingerprint, the contestant's system prompt, what really ran.

    New columns only (old rows keep NULL: nothing is rewritten). `input_fingerprint` is
    storage.pairs.input_fingerprint(conversation); `system_prompt` the contestant's own system
    prompt (scaffolding, not input); `sampling_requested` the pane's settings before overrides
    (`sampling` holds what ran); `calls` every prompt sent with the sampling it ran under;
    `model_identity` what the model was (file hash, folder hash, hub commit, server report).
    """
    for column in ("input_fingerprint", "system_prompt", "sampling_requested", "calls", "model_identity"):
        db["generations"].add_column(column, str)
    db["generations"].create_index(["input_fingerprint"], if_not_exists=True)


@migrations()
def m006_vote_exclusions(db: Database) -> None:
    """vote_exclusions: votes kept but not counted (later duplicates of a pair, unvotable pairs).

    Votes stored before the rules existed are marked here once, in a side table, so no vote row
    is rewritten: a later vote on the same unordered pair (`duplicate_pair`, pointing at the
    first), a vote on an answer cut by Stop or failed (`unfinished_answer`), a vote between
    answers to different inputs (`different_inputs`). New votes cannot break the rules (m008).
    """
    db["vote_exclusions"].create(
        {"vote_id": int, "reason": str, "first_vote_id": int, "detail": str, "created_at": str},
        pk="vote_id", foreign_keys=[("vote_id", "votes", "id")], not_null=["reason", "created_at"],
        if_not_exists=True,
    )
    rows = db.execute(
        "SELECT v.id, b.left_generation_id, b.right_generation_id, gl.conversation, gr.conversation, "
        "gl.finish_reason, gl.error, gr.finish_reason, gr.error FROM votes v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations gl ON gl.id = b.left_generation_id JOIN generations gr ON gr.id = b.right_generation_id "
        "ORDER BY v.id"
    )
    first: dict[tuple[int, int], int] = {}
    marks = []
    for vote_id, left, right, conv_l, conv_r, fin_l, err_l, fin_r, err_r in rows:
        key = pair_key(left, right)
        if key in first:
            marks.append((vote_id, "duplicate_pair", first[key], f"vote {first[key]} judged this pair first"))
            continue
        first[key] = vote_id
        unfinished = unvotable_reason(fin_l, err_l) or unvotable_reason(fin_r, err_r)
        if unfinished:
            marks.append((vote_id, "unfinished_answer", None, f"an answer {unfinished}"))
            continue
        difference = input_difference(_json_list(conv_l), _json_list(conv_r))
        if difference:
            marks.append((vote_id, "different_inputs", None, difference))
    now = _now_iso()
    db.conn.executemany(
        "INSERT INTO vote_exclusions (vote_id, reason, first_vote_id, detail, created_at) VALUES (?, ?, ?, ?, ?)",
        [(*mark, now) for mark in marks])


def _json_list(text: str | None) -> list:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@migrations()
def m007_tombstones(db: Database) -> None:
    """tombstones: `python app.py forget` hides a generation, battle or vote from rankings and
    exports without touching its row. `session_id` is set when a whole session was forgotten."""
    db["tombstones"].create(
        {"id": int, "created_at": str, "tstamp": float, "kind": str, "target_id": int, "session_id": str,
         "reason": str, "requested_by": str},
        pk="id", not_null=["created_at", "tstamp", "kind", "target_id", "reason"], if_not_exists=True,
    )
    db["tombstones"].create_index(["kind", "target_id"], if_not_exists=True)
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS tombstones_kind_check BEFORE INSERT ON tombstones "
        "WHEN NEW.kind NOT IN ('generation', 'battle', 'vote') "
        "BEGIN SELECT RAISE(ABORT, 'tombstones.kind must be generation, battle or vote'); END")


def _append_only_triggers(db: Database, table: str, hint: str = "") -> None:
    """BEFORE UPDATE / DELETE triggers that refuse the change: the table only grows (its history is the record)."""
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {event} refused{hint}'); END")


@migrations()
def m008_append_only_and_judging_rules(db: Database) -> None:
    """Triggers: the judged tables are append-only, and a battle or vote that breaks the rules of
    storage/pairs.py is refused whoever writes it (same input, finished answers, one per pair)."""
    for table in _APPEND_ONLY:
        _append_only_triggers(db, table, hint="; use python app.py forget to hide a row")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS battles_same_input BEFORE INSERT ON battles "
        "WHEN (SELECT input_fingerprint FROM generations WHERE id = NEW.left_generation_id) <> "
        "(SELECT input_fingerprint FROM generations WHERE id = NEW.right_generation_id) "
        "BEGIN SELECT RAISE(ABORT, 'battle refused: the two answers are to different inputs'); END")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS battles_finished_answers BEFORE INSERT ON battles "
        "WHEN EXISTS (SELECT 1 FROM generations g WHERE g.id IN (NEW.left_generation_id, NEW.right_generation_id) "
        f"AND {_UNFINISHED_SQL}) "
        "BEGIN SELECT RAISE(ABORT, 'battle refused: an answer was cancelled or failed'); END")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS battles_one_per_pair BEFORE INSERT ON battles "
        "WHEN EXISTS (SELECT 1 FROM battles b WHERE (b.left_generation_id = NEW.left_generation_id AND "
        "b.right_generation_id = NEW.right_generation_id) OR (b.left_generation_id = NEW.right_generation_id AND "
        "b.right_generation_id = NEW.left_generation_id)) "
        "BEGIN SELECT RAISE(ABORT, 'battle refused: this pair of answers already has a battle'); END")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS votes_one_per_pair BEFORE INSERT ON votes "
        "WHEN EXISTS (SELECT 1 FROM battles nb JOIN battles b ON (b.left_generation_id = nb.left_generation_id "
        "AND b.right_generation_id = nb.right_generation_id) OR (b.left_generation_id = nb.right_generation_id "
        "AND b.right_generation_id = nb.left_generation_id) JOIN votes v ON v.battle_id = b.id "
        "WHERE nb.id = NEW.battle_id) "
        "BEGIN SELECT RAISE(ABORT, 'vote refused: this pair of answers is already judged'); END")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS votes_finished_answers BEFORE INSERT ON votes "
        "WHEN EXISTS (SELECT 1 FROM battles b JOIN generations g ON g.id IN (b.left_generation_id, "
        f"b.right_generation_id) WHERE b.id = NEW.battle_id AND {_UNFINISHED_SQL}) "
        "BEGIN SELECT RAISE(ABORT, 'vote refused: an answer was cancelled or failed'); END")


@migrations()
def m009_counted_votes_view(db: Database) -> None:
    """counted_votes: the votes rankings and exports use (not excluded, not tombstoned)."""
    db.execute(
        "CREATE VIEW IF NOT EXISTS counted_votes AS SELECT v.* FROM votes v JOIN battles b ON b.id = v.battle_id "
        "WHERE v.id NOT IN (SELECT vote_id FROM vote_exclusions) "
        "AND v.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'vote') "
        "AND b.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'battle') "
        "AND b.left_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation') "
        "AND b.right_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')")

# --- Categories: a user tag per battle ---


@migrations()
def m010_battles_tag(db: Database) -> None:
    """battles.tag: an optional user tag, the battle's category on the leaderboard (NULL = by preset family)."""
    db["battles"].add_column("tag", str)
    db["battles"].create_index(["tag"], if_not_exists=True)

# --- The lab's records: append-only, with the details a report needs ---

_LAB_RUN_FIXED = ("id", "created_at", "tstamp", "name", "task_file", "task_hash", "n_items", "model_id",
                  "model_n_params", "backend", "device", "mode", "preset", "family", "shots", "samples",
                  "sampling", "seed", "config_key")


@migrations()
def m015_lab_append_only(db: Database) -> None:
    """Lab runs are append-only, enforced by triggers: results are never updated, replaced or deleted;
    a run's identity (items, task, model, configuration) never changes; once finished, nothing of it
    changes. Only a running run's own status, speed and error are written (see storage/lab.py)."""
    guard = "BEGIN SELECT RAISE(ABORT, '{table} is append-only: {what}'); END"
    db.execute("CREATE TRIGGER IF NOT EXISTS lab_results_no_update BEFORE UPDATE ON lab_results "
               + guard.format(table="lab_results", what="a stored result is never changed"))
    db.execute("CREATE TRIGGER IF NOT EXISTS lab_results_no_delete BEFORE DELETE ON lab_results "
               + guard.format(table="lab_results", what="a stored result is never deleted"))
    db.execute("CREATE TRIGGER IF NOT EXISTS lab_results_no_replace BEFORE INSERT ON lab_results "
               "WHEN EXISTS (SELECT 1 FROM lab_results WHERE id = NEW.id "
               "OR (run_id = NEW.run_id AND item_index = NEW.item_index)) "
               + guard.format(table="lab_results", what="a stored result is never replaced"))
    db.execute("CREATE TRIGGER IF NOT EXISTS lab_runs_no_delete BEFORE DELETE ON lab_runs "
               + guard.format(table="lab_runs", what="a run is never deleted"))
    db.execute(f"CREATE TRIGGER IF NOT EXISTS lab_runs_fixed BEFORE UPDATE OF {', '.join(_LAB_RUN_FIXED)} "
               "ON lab_runs " + guard.format(table="lab_runs", what="the configuration of a run never changes"))
    db.execute("CREATE TRIGGER IF NOT EXISTS lab_runs_finished BEFORE UPDATE ON lab_runs "
               "WHEN OLD.status <> 'running' "
               + guard.format(table="lab_runs", what="a finished run never changes; a re-run is a new run"))


@migrations()
def m016_lab_details(db: Database) -> None:
    """Per item: self-consistency's sampled paths (maj@k), the options' log-likelihoods (multiple
    choice), time to first token and tokens/s. Per run: the model's kind and architecture (base vs
    instruct pairs). The run-identity trigger of m015 is widened to the new run columns."""
    for column, kind in (("samples", str), ("option_logprobs", str), ("ttft_s", float), ("tokens_per_s", float)):
        if column not in db["lab_results"].columns_dict:
            db["lab_results"].add_column(column, kind)
    for column, kind in (("model_is_chat", int), ("model_architecture", str)):
        if column not in db["lab_runs"].columns_dict:
            db["lab_runs"].add_column(column, kind)
    db.execute("DROP TRIGGER IF EXISTS lab_runs_fixed")
    fixed = (*_LAB_RUN_FIXED, "model_is_chat", "model_architecture")
    db.execute(f"CREATE TRIGGER lab_runs_fixed BEFORE UPDATE OF {', '.join(fixed)} ON lab_runs "
               "BEGIN SELECT RAISE(ABORT, 'lab_runs is append-only: the configuration of a run never changes'); END")


@migrations()
def m017_lab_model_stats(db: Database) -> None:
    """lab_model_stats: one row per model per lab invocation (load time, peak memory, tokens/s, time
    to first token, whether it was freed afterwards); append-only like the other lab tables."""
    db["lab_model_stats"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "model_id": str, "backend": str, "device": str,
            "run_ids": str, "n_items": int, "load_s": float, "rss_before_bytes": int, "peak_rss_bytes": int,
            "tokens_per_s": float, "ttft_s": float, "n_output_tokens": int, "freed": int, "error": str,
        },
        pk="id",
        not_null=["created_at", "tstamp", "model_id", "backend", "device", "run_ids", "freed"],
        if_not_exists=True,
    )
    db["lab_model_stats"].create_index(["model_id"], if_not_exists=True)
    for event in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER IF NOT EXISTS lab_model_stats_no_{event.lower()} BEFORE {event} ON "
                   "lab_model_stats BEGIN SELECT RAISE(ABORT, 'lab_model_stats is append-only'); END")


# --- Team quality ---
# whose vote each vote is (a `voter` column), one judgement per pair PER VOTER, and
# battles assigned to several annotators (quotas). Rules in storage/pairs.py and storage/voters.py.

# The voter a stored session_id names: `user:NAME/...` (recording.session_id_for under --auth) -> NAME,
# anything else -> 'local'. storage.voters.voter_of_session is the same rule in Python (a test checks).
VOTER_FROM_SESSION_SQL = (
    "CASE WHEN substr(coalesce(session_id, ''), 1, 5) = 'user:' AND instr(substr(session_id, 6), '/') > 1 "
    "THEN substr(session_id, 6, instr(substr(session_id, 6), '/') - 1) ELSE 'local' END")


@migrations()
def m020_votes_voter(db: Database) -> None:
    """votes.voter: who judged, so several annotators can judge one battle, each once.

    The column is added (every row 'local') and rows whose session_id names a login get that name
    (the only value written: the append-only UPDATE trigger is dropped for this one statement and re-created from
    its own stored SQL, so it comes back exactly). Then the per-battle unique index becomes
    (battle_id, voter) and m008's `votes_one_per_pair` becomes `votes_one_per_pair_per_voter`.
    The column is NOT NULL DEFAULT 'local', so a writer that does not name a voter stores 'local'.
    """
    db["votes"].add_column("voter", str, not_null_default="local")
    guard = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'votes_append_only_update'"
                       ).fetchone()
    db.execute("DROP TRIGGER IF EXISTS votes_append_only_update")
    db.execute(f"UPDATE votes SET voter = {VOTER_FROM_SESSION_SQL} WHERE session_id LIKE 'user:%'")
    if guard is not None:
        db.execute(guard[0])
    db.execute("DROP INDEX IF EXISTS idx_votes_battle_id")
    db["votes"].create_index(["battle_id", "voter"], unique=True, if_not_exists=True)
    db["votes"].create_index(["voter"], if_not_exists=True)
    db.execute("DROP TRIGGER IF EXISTS votes_one_per_pair")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS votes_one_per_pair_per_voter BEFORE INSERT ON votes "
        "WHEN EXISTS (SELECT 1 FROM battles nb JOIN battles b ON (b.left_generation_id = nb.left_generation_id "
        "AND b.right_generation_id = nb.right_generation_id) OR (b.left_generation_id = nb.right_generation_id "
        "AND b.right_generation_id = nb.left_generation_id) JOIN votes v ON v.battle_id = b.id "
        "WHERE nb.id = NEW.battle_id AND v.voter = NEW.voter) "
        "BEGIN SELECT RAISE(ABORT, 'vote refused: this voter already judged this pair of answers'); END")


@migrations()
def m021_assignments(db: Database) -> None:
    """assignments: battle X is to be judged by voter Y (quotas of overlap; storage/assignments.py).

    Append-only like the judged tables: an assignment is done when that voter's vote on the
    battle exists, so nothing is ever updated.
    """
    db["assignments"].create(
        {"id": int, "battle_id": int, "voter": str, "created_at": str, "tstamp": float, "assigned_by": str,
         "batch": str},
        pk="id", foreign_keys=[("battle_id", "battles", "id")], not_null=["battle_id", "voter", "created_at", "tstamp"],
        if_not_exists=True,
    )
    db["assignments"].create_index(["battle_id", "voter"], unique=True, if_not_exists=True)
    db["assignments"].create_index(["voter"], if_not_exists=True)
    _append_only_triggers(db, "assignments")


# --- Fast imports: two generations indexes no query uses ---
# Every read of generations goes by id (the primary key) or by
# session_id (forgetting a session); none filters, joins, groups or sorts on model_id or input_fingerprint
# (the same-input rule compares the fingerprints of two rows found by id). Each cost a sort of the whole
# table on every large Arena import (2-3 s per million battles) and ~1/6 of the file's bytes.
# tests/test_import_battles.py proves with EXPLAIN QUERY PLAN that the queries still use their indexes.


@migrations()
def m022_drop_unused_generation_indexes(db: Database) -> None:
    """Drop generations(model_id) and generations(input_fingerprint): no query reads them."""
    db.execute("DROP INDEX IF EXISTS idx_generations_model_id")
    db.execute("DROP INDEX IF EXISTS idx_generations_input_fingerprint")


# --- A model as judge ---
# Every verdict a judge model gave on a battle, in each order, with the exact
# prompt and raw output; kept apart from people's votes (see docs/architecture.md, "A model as
# judge"). Its consistent verdicts become votes in m032.

JUDGE_VERDICTS = (*WINNERS, "unparseable")
JUDGE_ORDERS = ("AB", "BA")


@migrations()
def m030_judge_verdicts(db: Database) -> None:
    """judge_verdicts: one row per (battle, judge, order), append-only, checked by triggers.

    `judge` is `judge:<model>@<prompt>`; `judge_order` AB shows the battle's left answer as A, BA
    shows it as B; `verdict` is in the battle's terms (left/right/tie/both_bad) or `unparseable`
    (never guessed); `label` is what the judge wrote (A, B, tie, both_bad) before the swap.
    """
    db["judge_verdicts"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "battle_id": int, "judge": str,
            "judge_model": str, "judge_model_identity": str, "prompt_id": str, "judge_order": str,
            "judge_prompt": str, "raw_output": str, "label": str, "verdict": str,
            "finish_reason": str, "sampling": str, "total_s": float,
        },
        pk="id", foreign_keys=[("battle_id", "battles", "id")],
        not_null=["created_at", "tstamp", "battle_id", "judge", "judge_model", "prompt_id", "judge_order",
                  "judge_prompt", "raw_output", "verdict"],
        if_not_exists=True,
    )
    db["judge_verdicts"].create_index(["battle_id", "judge", "judge_order"], unique=True, if_not_exists=True)
    db["judge_verdicts"].create_index(["judge"], if_not_exists=True)
    verdicts = ", ".join(f"'{v}'" for v in JUDGE_VERDICTS)
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS judge_verdicts_checks BEFORE INSERT ON judge_verdicts "
        f"WHEN NEW.verdict NOT IN ({verdicts}) OR NEW.judge_order NOT IN ('AB', 'BA') "
        "OR NEW.judge NOT LIKE 'judge:%@%' "
        "BEGIN SELECT RAISE(ABORT, 'judge_verdicts: verdict, order (AB|BA) or judge (judge:<model>@<prompt>) "
        "invalid'); END")
    _append_only_triggers(db, "judge_verdicts")


@migrations()
def m031_judge_pair_verdicts_view(db: Database) -> None:
    """judge_pair_verdicts: per (battle, judge) with both orders judged, the combined verdict.

    `consistent` is 1 when both orders gave the same (battle-side) verdict and it is not
    unparseable; `verdict` is that verdict, `unparseable` when either order was (never counted),
    else `inconsistent` (readers decide what that counts as: a tie by default). Battles or
    generations that were forgotten are left out.
    """
    db.execute(
        "CREATE VIEW IF NOT EXISTS judge_pair_verdicts AS "
        "SELECT ab.battle_id AS battle_id, ab.judge AS judge, ab.judge_model AS judge_model, "
        "ab.prompt_id AS prompt_id, ab.verdict AS ab_verdict, ba.verdict AS ba_verdict, "
        "CASE WHEN ab.verdict = ba.verdict AND ab.verdict <> 'unparseable' THEN 1 ELSE 0 END AS consistent, "
        "CASE WHEN 'unparseable' IN (ab.verdict, ba.verdict) THEN 'unparseable' WHEN ab.verdict = ba.verdict "
        "THEN ab.verdict ELSE 'inconsistent' END AS verdict, max(ab.tstamp, ba.tstamp) AS tstamp "
        "FROM judge_verdicts ab JOIN judge_verdicts ba ON ba.battle_id = ab.battle_id AND ba.judge = ab.judge "
        "AND ba.judge_order = 'BA' JOIN battles b ON b.id = ab.battle_id WHERE ab.judge_order = 'AB' "
        "AND b.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'battle') "
        "AND b.left_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation') "
        "AND b.right_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')")

# --- A judge model's verdicts as votes ---
# Consistent verdicts become votes (storage/judge_verdicts.py, `fold_judge_votes`), kept apart
# from people's by the voter name: `judge:<model>@<prompt>` (a login name cannot contain ':', so no
# person's voter can start so). `counted_votes` becomes people's votes only, so every reader that
# does not choose stays people-only; `counted_votes_all` holds people's and judges' votes, and the
# readers that offer the choice (leaderboard, exports) filter it with `storage.voters.voter_group_sql`.

JUDGE_VOTER_GLOB = "judge:*"
"""SQL GLOB matching a judge's voter name (case-sensitive, unlike LIKE)."""


@migrations()
def m032_judge_votes(db: Database) -> None:
    """counted_votes = people's votes; counted_votes_all = everyone's (people and judges); a judge's
    vote is refused unless it is what its stored verdicts say (both orders agree, or a tie for a
    pair whose orders disagree), so no judge vote exists without its two judged orders."""
    db.execute("DROP VIEW IF EXISTS counted_votes")
    db.execute(
        "CREATE VIEW IF NOT EXISTS counted_votes_all AS SELECT v.* FROM votes v JOIN battles b ON b.id = v.battle_id "
        "WHERE v.id NOT IN (SELECT vote_id FROM vote_exclusions) "
        "AND v.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'vote') "
        "AND b.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'battle') "
        "AND b.left_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation') "
        "AND b.right_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')")
    db.execute(f"CREATE VIEW counted_votes AS SELECT * FROM counted_votes_all WHERE voter NOT GLOB '{JUDGE_VOTER_GLOB}'")
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS votes_judge_needs_verdicts BEFORE INSERT ON votes "
        f"WHEN NEW.voter GLOB '{JUDGE_VOTER_GLOB}' AND NOT EXISTS (SELECT 1 FROM judge_pair_verdicts p "
        "WHERE p.battle_id = NEW.battle_id AND p.judge = NEW.voter AND ((p.consistent = 1 AND p.verdict = NEW.winner) "
        "OR (p.verdict = 'inconsistent' AND NEW.winner = 'tie'))) "
        "BEGIN SELECT RAISE(ABORT, 'vote refused: a judge''s vote must be its verdict in both orders (a tie when "
        "the orders disagree)'); END")

# --- The Arena's saved pool ---
# Set with `python app.py arena pool` or the Train tab's "Battle it" button: an
# append-only log of pool settings; the latest row is the pool in force, a row with no models clears it.


@migrations()
def m040_arena_pool(db: Database) -> None:
    """arena_pool: one row per setting of the saved Arena pool (`models` a JSON list; '[]' = cleared)."""
    db["arena_pool"].create(
        {"id": int, "created_at": str, "tstamp": float, "models": str, "set_by": str},
        pk="id", not_null=["created_at", "tstamp", "models"], if_not_exists=True,
    )
    _append_only_triggers(db, "arena_pool")

# --- append-only against INSERT OR REPLACE ---
# REPLACE (INSERT OR REPLACE, REPLACE INTO, sqlite-utils' replace=True) deletes the row that holds
# the key and inserts the new one; that implicit delete fires DELETE triggers only when
# `PRAGMA recursive_triggers` is on, so the append-only triggers above let a vote change owner and
# verdict. A BEFORE INSERT trigger runs before any conflict is resolved, for every connection:
# it refuses an insert whose primary key or any unique key is already taken.

APPEND_ONLY_TABLES = ("generations", "battles", "votes", "vote_exclusions", "tombstones", "assignments",
                      "judge_verdicts", "arena_pool", "lab_runs", "lab_model_stats")


def _no_replace_trigger(db: Database, table: str) -> None:
    """BEFORE INSERT trigger `<table>_no_replace`: an insert onto an existing key is refused (never a replace)."""
    keys = [[c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[5]]]
    for index in db.execute(f"PRAGMA index_list({table})").fetchall():
        if index[2] and index[3] == "c":  # unique indexes made by CREATE UNIQUE INDEX
            keys.append([c[2] for c in db.execute(f'PRAGMA index_info("{index[1]}")')])
    taken = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE " + " AND ".join(f"{col} = NEW.{col}" for col in cols) + ")"
        for cols in keys if cols)
    db.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} WHEN {taken} "
               f"BEGIN SELECT RAISE(ABORT, '{table} already holds a row with this key, and is append-only: "
               "a stored row is never replaced'); END")


@migrations()
def m041_append_only_refuses_replace(db: Database) -> None:
    """Every append-only table refuses an insert onto a key it already holds, so REPLACE cannot rewrite a row."""
    for table in APPEND_ONLY_TABLES:
        _no_replace_trigger(db, table)

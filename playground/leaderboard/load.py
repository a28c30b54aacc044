"""Database -> battles: one SQL pass per leaderboard, labels and codes computed in SQL.

Which battles count: anonymous ones by default (as Chatbot Arena ranks); named Playground
comparisons only when asked for (`include_named`). Whose votes count: people's by default;
judge models' (voter `judge:<model>@<prompt>`) or both when asked for (`voters`). The
queries read `counted_votes_all` and `vote_filter_sql` keeps the chosen voters.

A battle's *category* is its user tag when it has one, else the task family of the prompting
preset its answers were made with (read at query time from the presets, so renaming a family
needs no migration), else `OTHER`.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sqlite_utils import Database

from playground.ranking import Battles, RankingError
from playground.verdicts import WINNERS
from storage.pairs import same_answer_sql

GroupBy = Literal["auto", "model", "mode", "model+mode"]
GROUPINGS: tuple[str, ...] = ("auto", "model", "mode", "model+mode")
NO_MODE = "(no mode)"
OTHER = "other"  # the category of a battle with neither a tag nor a known preset family


def vote_filter_sql(
    *,
    anonymous_only: bool = False,
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    mode: str | None = None,
    voter: str | None = None,
    voters: str = "people",
) -> tuple[str, list[Any]]:
    """WHERE clause over `counted_votes_all v JOIN battles b`: vote time in [since, until), either side's
    model/mode, one voter's votes (`storage.voters.voter_sql`; None = everyone's), and people's,
    judges' or both's votes (`voters`, people by default: `storage.voters.voter_group_sql`)."""
    from storage.voters import voter_group_sql, voter_sql

    clauses, params = [], []
    group = voter_group_sql(voters)
    if group:
        clauses.append(group)
    own, own_params = voter_sql(voter)
    if own:
        clauses.append(own)
        params += own_params
    if anonymous_only:
        clauses.append("b.anonymous = 1")
    if since is not None:
        clauses.append("v.tstamp >= ?")
        params.append(float(since))
    if until is not None:
        clauses.append("v.tstamp < ?")
        params.append(float(until))
    if model is not None:
        clauses.append("(b.left_model = ? OR b.right_model = ?)")
        params += [model, model]
    if mode is not None:
        clauses.append("(b.left_mode = ? OR b.right_mode = ?)")
        params += [mode, mode]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params




def category_sql(families: Mapping[str, str]) -> tuple[str, list[str]]:
    """SQL for a battle's category over `battles b LEFT JOIN generations gl` (tag, else preset family)."""
    if not families:
        return f"coalesce(nullif(b.tag, ''), '{OTHER}')", []
    cases = " ".join("WHEN ? THEN ?" for _ in families)
    params = [value for item in sorted(families.items()) for value in item]
    return f"coalesce(nullif(b.tag, ''), CASE gl.preset {cases} ELSE '{OTHER}' END)", params


def category_counts(db: Database, families: Mapping[str, str], *, include_named: bool = False,
                    voters: str = "people") -> dict[str, int]:
    """Voted battles per category (under the anonymous/named rule and the voters chosen), most first."""
    expr, params = category_sql(families)
    where, where_params = vote_filter_sql(anonymous_only=not include_named, voters=voters)
    rows = db.execute(f"SELECT {expr}, count(*) FROM counted_votes_all v JOIN battles b ON b.id = v.battle_id "
                      f"LEFT JOIN generations gl ON gl.id = b.left_generation_id {where} GROUP BY 1",
                      params + where_params).fetchall()
    return dict(sorted(((c, int(n)) for c, n in rows), key=lambda item: (-item[1], item[0])))


def choose_grouping(db: Database, *, include_named: bool = False, voters: str = "people") -> tuple[str, str]:
    """What 'auto' means for these votes: (grouping, why), or ("model", "") when there is nothing to say.

    By model when every counted battle compares two different models; by model + mode when some
    compare prompting modes of one model (grouped by model they would be self-battles and be
    dropped: the default install, with one bundled model, has only those).
    """
    where, params = vote_filter_sql(anonymous_only=not include_named, voters=voters)
    same, total = db.execute(
        "SELECT coalesce(sum(b.left_model = b.right_model), 0), count(*) FROM counted_votes_all v JOIN battles b "
        f"ON b.id = v.battle_id {where}", params).fetchone()
    if not same:
        return "model", ""
    if same == total:
        what = "the battle compares" if total == 1 else f"all {total} battles compare"
        return "model+mode", (f"Grouped by **model + mode**: {what} prompting modes of one model, "
                              "so grouping by model would leave nothing to rank.")
    return "model+mode", (f"Grouped by **model + mode**: {same} of {total} battles compare prompting modes of one "
                          "model, which grouping by model would drop.")


def has_anonymous_votes(db: Database, voters: str = "people") -> bool:
    """Whether any of these voters' votes is on an anonymous battle (else only named comparisons: say how
    to rank them)."""
    from storage.voters import voter_group_sql

    whose = voter_group_sql(voters)
    return db.execute("SELECT 1 FROM votes v JOIN battles b ON b.id = v.battle_id WHERE b.anonymous = 1 "
                      + (f"AND {whose} " if whose else "") + "LIMIT 1").fetchone() is not None


def has_votes(db: Database, voters: str = "people") -> bool:
    """Whether these voters (people, judges or both) cast any vote at all."""
    from storage.voters import voter_group_sql

    whose = voter_group_sql(voters)
    return db.execute("SELECT 1 FROM votes v " + (f"WHERE {whose} " if whose else "") + "LIMIT 1").fetchone() is not None


@dataclass(frozen=True)
class Selection:
    """The battles a leaderboard ranks and how they were chosen: `blind` holds the anonymous ones
    (position bias is measured there) when named comparisons are included, else None; `grouping`
    is what 'auto' resolved to and `note` says why ('' when there is nothing to say)."""

    battles: Battles
    blind: Battles | None
    grouping: str
    note: str


def select_battles(
    db: Database,
    *,
    by: GroupBy = "auto",
    include_named: bool = False,
    since: float | None = None,
    until: float | None = None,
    with_lengths: bool = False,
    category: str | None = None,
    families: Mapping[str, str] | None = None,
    voters: str = "people",
) -> Selection:
    """What the table, `python app.py leaderboard` and `export leaderboard` rank, in one read snapshot:
    anonymous battles unless `include_named`, grouped as `choose_grouping` says when `by="auto"`, votes of
    people, judges or both as `voters` says."""
    with _read_snapshot(db):
        note = ""
        if by == "auto":
            by, note = choose_grouping(db, include_named=include_named, voters=voters)
        where = dict(since=since, until=until, category=category, families=families, voters=voters)
        battles, same = _load_battles(db, by=by, anonymous_only=not include_named, with_lengths=with_lengths, **where)
        blind = load_battles(db, by=by, anonymous_only=True, with_lengths=False, **where) if include_named else None
    if same:
        note = (note + " " if note else "") + (
            f"{same} decisive vote(s) on two identical answers are left out: when both sides said the same "
            "thing, picking one says nothing about which model is better.")
    return Selection(battles, blind, by, note)


_WINNER_CODE_SQL = "CASE v.winner " + " ".join(f"WHEN '{w}' THEN {i}" for i, w in enumerate(WINNERS)) + " END"
_ROW_DTYPE = np.dtype([("code", np.int64), ("tstamp", np.float64), ("left_len", np.int64), ("right_len", np.int64),
                       ("same", np.int8)])
_DECISIVE_ON_SAME_SQL = f"(v.winner IN ('left', 'right') AND {same_answer_sql('gl.output', 'gr.output')})"


def load_battles(
    db: Database,
    *,
    by: GroupBy = "model",
    anonymous_only: bool = False,
    since: float | None = None,
    until: float | None = None,
    with_lengths: bool = True,
    category: str | None = None,
    families: Mapping[str, str] | None = None,
    voters: str = "people",
) -> Battles:
    """Every counted vote's battle in vote-time order (ties by vote id), read as numbers, not Python rows.

    Counted = storage's `counted_votes_all` view (people's votes unless `voters` says otherwise):
    each voter's first judgement of each pair of answers (several annotators' votes on one
    battle each count once), and nothing forgotten with
    `python app.py forget` (docs/architecture.md, "Judging rules").

    Contestant labels: model (`left_model`), mode (empty mode -> '(no mode)') or 'model + mode'
    (empty mode -> just the model); `by="auto"` picks with `choose_grouping`. `tstamp` is the
    vote's time (when the judgement was made), which is also what `since`/`until` filter on.
    Answer lengths are `length(output)` in characters; `with_lengths=False` skips them when
    length control does not need them (the generations are joined anyway, for the identical-answer
    rule below). `category` keeps the
    battles of one category (`families` maps preset ids to task families). `voters`: people's
    votes (default), judge models' or both. A decisive vote on two identical answers
    (`storage.pairs.same_answer`) is left out: picking one of two equal texts says nothing about
    the models (ties and both-bad on them stay: the models did equally well, or badly);
    `select_battles` says how many in its note.

    Why it is shaped like this (1M battles in about a second): small DISTINCT queries list the
    models and modes; the main query maps each to its integer code in SQL (a binary search
    written as nested CASE) and packs left, right and winner into one integer, so SQLite hands
    back four numbers per battle that `np.fromiter` stores directly. The main query scans votes
    in rowid order (no sort in SQLite) and a stable numpy argsort puts it in time order. All
    queries run in one read transaction, so a vote arriving in between cannot go unlabelled.
    """
    return _load_battles(db, by=by, anonymous_only=anonymous_only, since=since, until=until, with_lengths=with_lengths,
                         category=category, families=families, voters=voters)[0]


def _load_battles(db: Database, *, by: GroupBy, anonymous_only: bool, since: float | None, until: float | None,
                  with_lengths: bool, category: str | None, families: Mapping[str, str] | None,
                  voters: str) -> tuple[Battles, int]:
    """`load_battles`, and how many decisive votes on identical answers (`storage.pairs.same_answer`) it left out."""
    if by not in GROUPINGS:
        raise RankingError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")
    with _read_snapshot(db):
        if by == "auto":
            by = choose_grouping(db, include_named=not anonymous_only, voters=voters)[0]
        columns = _GROUP_COLUMNS[by]
        where, params = vote_filter_sql(anonymous_only=anonymous_only, since=since, until=until, voters=voters)
        if category is not None:
            expr, cat_params = category_sql(families or {})
            where = (where + " AND " if where else "WHERE ") + f"{expr} = ?"
            params = params + cat_params + [category]
        lengths = "coalesce(length(gl.output), 0), coalesce(length(gr.output), 0)" if with_lengths else "0, 0"
        joins = ("LEFT JOIN generations gl ON gl.id = b.left_generation_id "
                 "LEFT JOIN generations gr ON gr.id = b.right_generation_id")
        values = {column: _distinct_values(db, column) for column in columns}
        packed, packed_params = _packed_code_sql(db, columns, values)
        sql = (
            f"SELECT coalesce({packed}, -1), v.tstamp, {lengths}, coalesce({_DECISIVE_ON_SAME_SQL}, 0) "
            f"FROM counted_votes_all v JOIN battles b ON b.id = v.battle_id {joins} {where} ORDER BY v.id"
        )
        table = np.fromiter(db.execute(sql, packed_params + params), dtype=_ROW_DTYPE)
    if (table["code"] < 0).any():
        raise RankingError("a battle's contestant changed while reading the votes; load the leaderboard again")
    same = int(table["same"].sum())
    if same:
        table = table[table["same"] == 0]
    order = np.argsort(table["tstamp"], kind="stable")
    if np.any(order != np.arange(len(order))):
        table = table[order]
    return _battles_from_table(table, by, columns, values, with_lengths), same


_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {"model": ("model",), "mode": ("mode",), "model+mode": ("model", "mode")}


def _column_sql(column: str, side: str) -> str:
    return f"b.{side}_model" if column == "model" else f"coalesce(b.{side}_mode, '')"


def _distinct_values(db: Database, column: str) -> list[str]:
    """Sorted distinct values of a contestant column over both sides (the model one uses an index)."""
    rows = db.execute(f"SELECT DISTINCT {_column_sql(column, 'left')}, {_column_sql(column, 'right')} FROM battles b")
    return sorted({value for row in rows for value in row})


@contextmanager
def _read_snapshot(db: Database) -> Iterator[None]:
    """One read transaction (a WAL snapshot) unless the caller already holds one."""
    if db.conn.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.conn.rollback()


def _packed_code_sql(db: Database, columns: tuple[str, ...], values: dict[str, list[str]]) -> tuple[str, list[str]]:
    """SQL for (((left digits) ... right digits) * 4 + winner), each digit a value's index."""
    expr, params = "0", []
    for side in ("left", "right"):
        for column in columns:
            if len(values[column]) > CASE_MAX_NAMES:
                digit, digit_params = _lookup_sql(db, column, _column_sql(column, side), values[column]), []
            else:
                digit, digit_params = _code_sql(_column_sql(column, side), values[column])
            expr = f"({expr}) * {max(len(values[column]), 1)} + ({digit})"
            params += digit_params
    return f"({expr}) * 4 + {_WINNER_CODE_SQL}", params


# Past this many names the nested CASE (two bound values a name, per side) is replaced by a lookup in a
# temporary table: 140k names made SQLite's parser overflow, and past ~16k the bound values run out.
CASE_MAX_NAMES = 1024


def _lookup_sql(db: Database, column: str, expr: str, names: list[str]) -> str:
    """SQL giving a value's index in sorted `names` from a TEMP table (NULL for a value not in it).

    The table lives in the caller's read transaction (`_read_snapshot` rolls it back with it).
    """
    table = f"temp.leaderboard_{column}_codes"
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS leaderboard_{column}_codes "
               "(name TEXT PRIMARY KEY, code INTEGER NOT NULL) WITHOUT ROWID")
    db.execute(f"DELETE FROM {table}")
    db.conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", ((name, k) for k, name in enumerate(names)))
    return f"(SELECT code FROM {table} WHERE name = {expr})"


def _code_sql(expr: str, names: list[str]) -> tuple[str, list[str]]:
    """SQL mapping a value to its index in sorted `names`: nested CASE, log2(n) comparisons a row.

    A leaf checks equality and yields NULL otherwise (the whole code becomes -1), so a value
    missing from `names` can never be counted as somebody else.
    """
    if not names:
        return "NULL", []

    def build(lo: int, hi: int) -> tuple[str, list[str]]:
        if hi - lo == 1:
            return f"CASE WHEN {expr} = ? THEN {lo} END", [names[lo]]
        mid = (lo + hi) // 2
        below, below_params = build(lo, mid)
        above, above_params = build(mid, hi)
        return f"CASE WHEN {expr} < ? THEN {below} ELSE {above} END", [names[mid], *below_params, *above_params]

    return build(0, len(names))


def _battles_from_table(
    table: np.ndarray, by: str, columns: tuple[str, ...], values: dict[str, list[str]], with_lengths: bool
) -> Battles:
    """Unpack the codes, build labels for the (model, mode) combinations that occur, drop the rest."""
    code, winner = np.divmod(table["code"], 4)
    digits: dict[tuple[str, str], np.ndarray] = {}
    for side in ("right", "left"):
        for column in reversed(columns):
            code, digits[side, column] = np.divmod(code, max(len(values[column]), 1))
    keys = {side: _combined_key(digits, side, columns, values) for side in ("left", "right")}
    used, inverse = np.unique(np.concatenate([keys["left"], keys["right"]]), return_inverse=True)
    labels = [_label(by, _key_values(int(key), columns, values)) for key in used]
    names, label_code = np.unique(np.asarray(labels, dtype=object), return_inverse=True)  # merges equal labels
    contestant = label_code[inverse]
    n = len(table)
    lengths = {"left_len": table["left_len"], "right_len": table["right_len"]} if with_lengths else {}
    return Battles.from_codes(list(names), contestant[:n], contestant[n:], winner, table["tstamp"], **lengths)


def _combined_key(digits, side: str, columns: tuple[str, ...], values: dict[str, list[str]]) -> np.ndarray:
    key = np.zeros(len(digits[side, columns[0]]), np.int64)
    for column in columns:
        key = key * max(len(values[column]), 1) + digits[side, column]
    return key


def _key_values(key: int, columns: tuple[str, ...], values: dict[str, list[str]]) -> dict[str, str]:
    found = {}
    for column in reversed(columns):
        key, digit = divmod(key, max(len(values[column]), 1))
        found[column] = values[column][digit]
    return found


def _label(by: str, parts: dict[str, str]) -> str:
    """The contestant's name: the model, the mode, or 'model + mode' (the model alone when mode is empty)."""
    if by == "model":
        return parts["model"]
    if by == "mode":
        return parts["mode"] or NO_MODE
    return f"{parts['model']} + {parts['mode']}" if parts["mode"] else parts["model"]


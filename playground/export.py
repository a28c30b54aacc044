"""Exports: DPO pairs and KTO rows for TRL, Chatbot Arena battles JSON, leaderboard files.

Preference data comes from `counted_votes_all` (storage: each annotator's first judgement of each
pair, nothing forgotten), people's votes only unless `voters` is "judges" or "both" (a judge
model's consistent verdicts; the summary counts rows per judge), and only from pairs
that satisfy storage/pairs.py (same input, finished answers, not the same text on both sides: counted in
the summary's `left_out["identical_answers"]`). A pair several annotators judged gives one row per vote (identical rows are deduped);
`agreed_only` keeps only pairs two or more annotators judged alike, once.

DPO JSONL follows TRL's preference formats exactly, one pair per line and no other keys:
  standard:       {"prompt": str, "chosen": str, "rejected": str}
  conversational: {"prompt": [messages ending with a user turn], "chosen": [messages], "rejected": [messages]}
The prompt is the longest common prefix of the two conversations (cut back to its last user
turn); `chosen`/`rejected` are each side's remaining messages ending with its answer. In a
single-turn pair that is one assistant message; in a multi-turn battle whose sides answered
earlier turns differently it is several (TRL's conversational format allows that). The standard
format cannot express several completion messages faithfully, so it leaves such pairs out and
says how many (`left_out["multi_turn"]`); a single remaining answer after a shared history is
rendered as "Role: content" blocks.

KTO JSONL is TRL's unpaired format, {"prompt", "completion", "label"}, with `KTO_RULE`.

Each file has two sidecars (three for an admin export: `<out>.team.json`, the annotators'
statistics and agreement): `<out>.meta.jsonl` (per line, same order: ids, models, modes, finish
reasons) and `<out>.summary.json` (the rule, counts, answers cut by the token limit, what was
left out and why). TRL rejects unknown keys in some code paths, hence the sidecars.

Every export streams rows from one SQL query into a temporary file next to the target and
renames it at the end: memory stays flat and a failed export never leaves half a file.

One module past 500 lines on purpose: the three exports share that file helper and the vote filters
(`vote_filter_sql`), and the leaderboard file is a thin call of `leaderboard.rank_votes`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlite_utils import Database

from playground.arena_format import ARENA_FIELDS, ARENA_WINNERS
from playground.errors import PlaygroundError
from playground.leaderboard import BoardOptions, rank_votes, to_csv, to_json, to_markdown, vote_filter_sql
from playground.ranking import NO_BATTLES, RankingError
from storage.pairs import input_difference, same_answer
from storage.voters import is_judge, voter_group_text

DPO_FORMATS: tuple[str, ...] = ("standard", "conversational")
LEADERBOARD_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
DPO_RULE = ("decisive votes only (left or right): chosen = the preferred answer, rejected = the other; "
            "ties and both-bad give no pair")
KTO_RULE = ("decisive vote (left or right): the preferred answer gives one row with label true and the other "
            "answer one row with label false; both_bad: both answers give rows with label false; "
            "tie: no rows (a tie says nothing about either answer on its own)")
TRUNCATED = "length"   # finish_reason of an answer cut by the token limit


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote. `skipped`: votes that cannot make a valid row (no user turn, empty
    answer, different inputs). `truncated`: rows written with an answer cut by the token limit.
    `left_out`: rows left out on purpose, by reason (truncated, multi_turn)."""

    path: Path
    written: int
    meta_path: Path | None = None
    duplicates: int = 0
    skipped: int = 0
    summary_path: Path | None = None
    truncated: int = 0
    left_out: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- files


def meta_path_for(out: str | Path) -> Path:
    """The per-line sidecar next to a DPO or KTO file: `<out>.meta.jsonl`."""
    out = Path(out)
    return out.with_name(out.name + ".meta.jsonl")


def summary_path_for(out: str | Path) -> Path:
    """The summary sidecar next to a DPO or KTO file: `<out>.summary.json`."""
    out = Path(out)
    return out.with_name(out.name + ".summary.json")


@contextmanager
def atomic_text_file(path: str | Path) -> Iterator[TextIO]:
    """Write to a hidden temporary file beside `path`, rename over `path` only on success.

    Any OSError (missing or read-only folder, path is a folder, disk full) becomes a
    PlaygroundError that names the path.
    """
    path = Path(path)
    if path.is_dir():
        raise PlaygroundError(f"cannot write the export to {path}: it is a folder; pass a file path with --out")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _unwritable(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unwritable(path: Path, exc: OSError) -> PlaygroundError:
    return PlaygroundError(
        f"cannot write the export to {path}: {exc.strerror or exc}; choose a writable file path with --out"
    )


# ----------------------------------------------------------------------------- DPO and KTO


@dataclass(frozen=True)
class PreferenceFilters:
    """Which counted votes become DPO pairs or KTO rows: declared once for the exports, the CLI, the
    UI and training.

    `model`/`mode` match either side; `since <= vote time < until` (epoch seconds); `anonymous_only`
    keeps blind battles; `include_truncated` keeps pairs with an answer cut by the token limit (off
    by default: a cut answer teaches the model to stop mid-sentence; the CLI and the downloads turn
    it on unless asked not to); `voter` keeps one voter's votes (`storage.voters`); `agreed_only`
    keeps a pair once, and only when two or more annotators judged it and all gave the same verdict
    (`agreed_battles`); `voters`: people's votes (default), judge models' (only pairs both orders
    agreed on) or both.
    """

    model: str | None = None
    mode: str | None = None
    since: float | None = None
    until: float | None = None
    anonymous_only: bool = False
    include_truncated: bool = False
    voter: str | None = None
    agreed_only: bool = False
    voters: str = "people"

    def vote_filters(self) -> dict[str, Any]:
        """The filters the SQL applies (`leaderboard.vote_filter_sql`); the rest apply per pair."""
        return dict(model=self.model, mode=self.mode, since=self.since, until=self.until,
                    anonymous_only=self.anonymous_only, voter=self.voter, voters=self.voters)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreferenceCounts:
    """What a run over the preference rows wrote and left out (see ExportResult)."""

    written: int = 0
    duplicates: int = 0
    truncated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    left_out: Counter[str] = field(default_factory=Counter)
    by_voter: Counter[str] = field(default_factory=Counter)   # rows per source: "people" or a judge's voter name


def export_dpo(db: Database, out: str | Path, filters: PreferenceFilters | None = None, *,
               format: str = "standard", dedupe: bool = True) -> ExportResult:
    """Write decisive votes as TRL DPO pairs to `out`, with `<out>.meta.jsonl` and `<out>.summary.json`.

    `dedupe` drops a pair whose (prompt, chosen, rejected) was already written (repeated prompts
    with identical answers add no signal, only weight). Admin exports (no `filters.voter`) also
    write `<out>.team.json`: per-annotator statistics and agreement (`playground.agreement.team_report`).
    A judge's inconsistent pair votes a tie, which gives no pair; the summary counts rows per voter
    kind and judge.
    """
    return _write_preference_file(db, out, "dpo", format, filters or PreferenceFilters(), dedupe)


def export_kto(db: Database, out: str | Path, filters: PreferenceFilters | None = None, *,
               format: str = "standard", dedupe: bool = True) -> ExportResult:
    """Write votes as TRL KTO rows ({"prompt", "completion", "label"}) by `KTO_RULE`, with the
    same sidecars, filters and options as `export_dpo` (`dedupe` drops repeated identical rows;
    judges' inconsistent ties give no rows)."""
    return _write_preference_file(db, out, "kto", format, filters or PreferenceFilters(), dedupe)


def _dpo_lines(row: dict[str, Any], sides: PairSides, format: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    left_won = row["winner"] == "left"
    chosen, rejected = (sides.left, sides.right) if left_won else (sides.right, sides.left)
    if format == "conversational":
        yield {"prompt": sides.prompt, "chosen": chosen, "rejected": rejected}, dpo_metadata(row)
    else:
        yield {"prompt": render_plain(sides.prompt), "chosen": chosen[0]["content"],
               "rejected": rejected[0]["content"]}, dpo_metadata(row)


def _kto_lines(row: dict[str, Any], sides: PairSides, format: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for side, completion in (("left", sides.left), ("right", sides.right)):
        label = row["winner"] == side
        if format == "conversational":
            line = {"prompt": sides.prompt, "completion": completion, "label": label}
        else:
            line = {"prompt": render_plain(sides.prompt), "completion": completion[0]["content"], "label": label}
        yield line, kto_metadata(row, side, label)


# kind -> (the verdicts that give rows, the rule in words, the row maker)
_KINDS: dict[str, tuple[tuple[str, ...], str, Any]] = {
    "dpo": (("left", "right"), DPO_RULE, _dpo_lines),
    "kto": (("left", "right", "both_bad"), KTO_RULE, _kto_lines),
}


def _check_format(format: str) -> None:
    if format not in DPO_FORMATS:
        raise PlaygroundError(f"unknown format {format!r}: choose {' or '.join(DPO_FORMATS)}")


def preference_rows(db: Database, kind: str, filters: PreferenceFilters, *, format: str = "standard",
                    dedupe: bool = True, counts: PreferenceCounts | None = None,
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of a DPO (`kind` "dpo") or KTO ("kto") export, in vote order, each as (its JSONL line,
    its sidecar metadata): the files and training read the same rows. `counts` collects what was
    written and left out."""
    _check_format(format)
    winners, _rule, make_rows = _KINDS[kind]
    counts = counts if counts is not None else PreferenceCounts()
    agreement = agreed_battles(db) if filters.agreed_only else {}
    used_battles: set[int] = set()
    seen: set[bytes] = set()  # 16-byte digests of written lines: ~50 MB per million rows
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps re-creates it per call
    for row in voted_pairs(db, winners, **filters.vote_filters()):
        if same_answer(row["left_output"], row["right_output"]):  # chosen == rejected: no signal, a contradiction
            counts.left_out["identical_answers"] += 1
            continue
        if filters.agreed_only:
            why = _not_agreed(agreement.get(row["battle_id"]), row["battle_id"] in used_battles)
            if why:
                counts.left_out[why] += 1
                continue
            used_battles.add(row["battle_id"])
        sides = split_pair(row)
        if isinstance(sides, str):
            counts.skipped[sides] += 1
            continue
        if format == "standard" and sides.multi_turn:
            counts.left_out["multi_turn"] += 1
            continue
        cut = TRUNCATED in (row["left_finish_reason"], row["right_finish_reason"])
        if cut and not filters.include_truncated:
            counts.left_out["truncated"] += 1
            continue
        for line_obj, meta_obj in make_rows(row, sides, format):
            line = encode(line_obj) + "\n"
            if dedupe:
                key = hashlib.blake2b(line.encode("utf-8"), digest_size=16).digest()
                if key in seen:
                    counts.duplicates += 1
                    continue
                seen.add(key)
            counts.written += 1
            counts.by_voter[row["voter"] if is_judge(row["voter"]) else "people"] += 1
            counts.truncated += cut
            yield line, {**meta_obj, "truncated": cut, "voter": row["voter"]}


def _write_preference_file(db: Database, out: str | Path, kind: str, format: str, filters: PreferenceFilters,
                           dedupe: bool) -> ExportResult:
    """The file, its sidecars and summary, from `preference_rows`."""
    _check_format(format)
    out = Path(out)
    rule = _KINDS[kind][1]
    counts = PreferenceCounts()
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with ExitStack() as files:
        lines = files.enter_context(atomic_text_file(out))
        meta = files.enter_context(atomic_text_file(meta_path_for(out)))
        summary = files.enter_context(atomic_text_file(summary_path_for(out)))
        for line, meta_obj in preference_rows(db, kind, filters, format=format, dedupe=dedupe, counts=counts):
            lines.write(line)
            meta.write(encode(meta_obj) + "\n")
        by_voter = Counter(counts.by_voter)
        summary.write(json.dumps({
            "kind": kind, "format": format, "rule": rule, "written": counts.written,
            "duplicates_dropped": counts.duplicates,
            "truncated_answers_included": counts.truncated, "include_truncated": filters.include_truncated,
            "left_out": dict(counts.left_out), "skipped": dict(counts.skipped), "filters": filters.vote_filters(),
            "dedupe": dedupe, "agreed_only": filters.agreed_only,
            "votes_used": "counted votes: each annotator's first judgement of each pair of answers, nothing "
                          "forgotten" + ("; only pairs two or more annotators judged alike, once"
                                         if filters.agreed_only else "")
                          + f"; {voter_group_text(filters.voters)}",
            "voters": filters.voters,
            "rows_from_people": by_voter.pop("people", 0),
            "rows_by_judge": dict(sorted(by_voter.items())),
            "notes": {
                "truncated": "rows whose answer (either side) was cut by the token limit (finish_reason length)",
                "identical_answers": "votes on two answers with the same text (after trimming whitespace): a DPO "
                                     "pair would have chosen == rejected, KTO the same answer labelled both ways",
                "multi_turn": "pairs whose sides differ in more than the final answer: the standard format cannot "
                              "hold several completion messages; use the conversational format",
                "single_annotator": "agreed_only: pairs judged by one annotator",
                "annotators_disagree": "agreed_only: pairs whose annotators gave different verdicts",
                "agreed_pair_repeat": "agreed_only: the other annotators' votes of a pair already written",
                "rows_by_judge": "rows from a judge model's votes (voter judge:<model>@<prompt>): its verdict in both "
                                 "orders; a pair whose orders disagree votes a tie, which gives no DPO pair or KTO row",
            },
            "exported_at": time.time(),
        }, indent=2, ensure_ascii=False) + "\n")
    if filters.voter is None:
        write_team_sidecar(db, out)
    return ExportResult(out, counts.written, meta_path_for(out), counts.duplicates, sum(counts.skipped.values()),
                        summary_path_for(out), counts.truncated, dict(counts.left_out))


def team_path_for(out: str | Path) -> Path:
    """`<out>.team.json`: the annotators' statistics and agreement, next to an admin export."""
    return Path(str(out) + ".team.json")


def write_team_sidecar(db: Database, out: str | Path) -> Path:
    """Write `playground.agreement.team_report` next to an export (every annotator's figures: admin data)."""
    from playground.agreement import team_report

    path = team_path_for(out)
    with atomic_text_file(path) as f:
        f.write(json.dumps(team_report(db), indent=2, ensure_ascii=False) + "\n")
    return path


def agreed_battles(db: Database) -> dict[int, tuple[int, bool]]:
    """{battle_id: (number of annotators, whether all gave one verdict)} over every counted vote."""
    sql = "SELECT battle_id, count(DISTINCT voter), count(DISTINCT winner) FROM counted_votes GROUP BY battle_id"
    return {int(b): (int(n), int(w) == 1) for b, n, w in db.execute(sql)}


def _not_agreed(agreement: tuple[int, bool] | None, already_written: bool) -> str | None:
    n_voters, unanimous = agreement or (0, False)
    if n_voters < 2:
        return "single_annotator"
    if not unanimous:
        return "annotators_disagree"
    return "agreed_pair_repeat" if already_written else None


_PAIR_COLUMNS = (
    "vote_id", "battle_id", "winner", "tstamp", "session_id", "left_model", "right_model",
    "left_mode", "right_mode", "anonymous", "left_generation_id", "right_generation_id",
    "left_conversation", "right_conversation", "left_output", "right_output",
    "left_finish_reason", "right_finish_reason", "voter",
)
_DPO_COLUMNS = _PAIR_COLUMNS  # the name the export benchmark uses


def voted_pairs(db: Database, winners: tuple[str, ...], **filters: Any) -> Iterator[dict[str, Any]]:
    """Counted votes with these winners, both conversations and answers, in vote-time order."""
    where, params = vote_filter_sql(**filters)
    marks = ", ".join("?" * len(winners))
    where = (where + " AND " if where else "WHERE ") + f"v.winner IN ({marks})"
    sql = (
        "SELECT v.id, v.battle_id, v.winner, v.tstamp, v.session_id, b.left_model, b.right_model, "
        "b.left_mode, b.right_mode, b.anonymous, b.left_generation_id, b.right_generation_id, "
        "gl.conversation, gr.conversation, gl.output, gr.output, gl.finish_reason, gr.finish_reason, v.voter "
        "FROM counted_votes_all v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations gl ON gl.id = b.left_generation_id "
        f"JOIN generations gr ON gr.id = b.right_generation_id {where} ORDER BY v.tstamp, v.id"
    )
    for values in db.execute(sql, [*params, *winners]):
        yield dict(zip(_PAIR_COLUMNS, values, strict=True))


@dataclass(frozen=True)
class PairSides:
    """A judged pair split for training: the shared prompt and each side's remaining messages."""

    prompt: list[dict[str, str]]
    left: list[dict[str, str]]
    right: list[dict[str, str]]

    @property
    def multi_turn(self) -> bool:
        return len(self.left) > 1 or len(self.right) > 1


def split_pair(row: dict[str, Any]) -> PairSides | str:
    """Prompt = the longest common prefix of both full conversations, cut back to its last user
    turn; each side = its remaining messages. Returns why not (a short reason) when unusable."""
    left_conv, right_conv = parse_conversation(row["left_conversation"]), parse_conversation(row["right_conversation"])
    if not left_conv or not right_conv or left_conv[-1]["role"] != "user" or right_conv[-1]["role"] != "user":
        return "no_user_turn"
    if not _has_text(row["left_output"]) or not _has_text(row["right_output"]):
        return "empty_answer"
    if input_difference(left_conv, right_conv):
        return "different_inputs"
    left = left_conv + [{"role": "assistant", "content": row["left_output"]}]
    right = right_conv + [{"role": "assistant", "content": row["right_output"]}]
    n = 0
    while n < min(len(left), len(right)) - 1 and left[n] == right[n]:
        n += 1
    while n > 0 and left[n - 1]["role"] != "user":
        n -= 1
    if n == 0:
        return "no_user_turn"
    return PairSides(prompt=left[:n], left=left[n:], right=right[n:])


def dpo_pair(row: dict[str, Any], format: str = "standard") -> dict[str, Any] | None:
    """One vote row -> {"prompt", "chosen", "rejected"} in the given format, or None if unusable
    (or multi-turn in the standard format)."""
    sides = split_pair(row)
    if isinstance(sides, str) or (format == "standard" and sides.multi_turn):
        return None
    chosen, rejected = (sides.left, sides.right) if row["winner"] == "left" else (sides.right, sides.left)
    if format == "conversational":
        return {"prompt": sides.prompt, "chosen": chosen, "rejected": rejected}
    return {"prompt": render_plain(sides.prompt), "chosen": chosen[0]["content"], "rejected": rejected[0]["content"]}


def dpo_metadata(row: dict[str, Any]) -> dict[str, Any]:
    left_won = row["winner"] == "left"
    return {
        "vote_id": row["vote_id"],
        "battle_id": row["battle_id"],
        "winner": row["winner"],
        "chosen_model": row["left_model"] if left_won else row["right_model"],
        "rejected_model": row["right_model"] if left_won else row["left_model"],
        "chosen_mode": row["left_mode"] if left_won else row["right_mode"],
        "rejected_mode": row["right_mode"] if left_won else row["left_mode"],
        "chosen_generation_id": row["left_generation_id"] if left_won else row["right_generation_id"],
        "rejected_generation_id": row["right_generation_id"] if left_won else row["left_generation_id"],
        "left_model": row["left_model"],
        "right_model": row["right_model"],
        "left_mode": row["left_mode"],
        "right_mode": row["right_mode"],
        "chosen_finish_reason": row["left_finish_reason"] if left_won else row["right_finish_reason"],
        "rejected_finish_reason": row["right_finish_reason"] if left_won else row["left_finish_reason"],
        "anonymous": bool(row["anonymous"]),
        "tstamp": row["tstamp"],
        "session_id": row["session_id"],
    }


def kto_metadata(row: dict[str, Any], side: str, label: bool) -> dict[str, Any]:
    return {
        "vote_id": row["vote_id"],
        "battle_id": row["battle_id"],
        "winner": row["winner"],
        "side": side,
        "label": label,
        "generation_id": row[f"{side}_generation_id"],
        "model": row[f"{side}_model"],
        "mode": row[f"{side}_mode"],
        "finish_reason": row[f"{side}_finish_reason"],
        "anonymous": bool(row["anonymous"]),
        "tstamp": row["tstamp"],
        "session_id": row["session_id"],
    }


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_conversation(text: str | None) -> list[dict[str, str]] | None:
    """The stored JSON conversation as clean {role, content} messages, or None if malformed."""
    try:
        messages = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    if not isinstance(messages, list):
        return None
    clean = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLE_LABELS or not isinstance(content, str):
            return None
        clean.append({"role": role, "content": content})
    return clean


def render_plain(conversation: list[dict[str, str]]) -> str:
    """Standard-format prompt: a lone user turn as is, otherwise 'Role: content' blocks."""
    if len(conversation) == 1 and conversation[0]["role"] == "user":
        return conversation[0]["content"]
    return "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content']}" for m in conversation)


# ----------------------------------------------------------------------------- Arena battles


def export_arena_battles(
    db: Database,
    out: str | Path,
    *,
    model: str | None = None,
    mode: str | None = None,
    since: float | None = None,
    until: float | None = None,
    anonymous_only: bool = False,
    voter: str | None = None,
    voters: str = "people",
) -> ExportResult:
    """Every voted battle as a JSON array in Chatbot Arena's published shape.

    Keys: question_id (the battle id), model_a/model_b (left/right model), winner
    (model_a | model_b | tie | tie (bothbad)), conversation_a/b (the side's conversation plus its
    final answer), turn (user turns), anony, tstamp (vote time), judge (the voter's session:
    `judge:<model>@<prompt>` for a judge model's vote). `voters`: people's votes (default), judges'
    or both. Modes are not part of Arena's shape and are not exported; `storage.import_arena_battles`
    reads the file back.
    """
    out = Path(out)
    where, params = vote_filter_sql(model=model, mode=mode, since=since, until=until, anonymous_only=anonymous_only,
                                    voter=voter, voters=voters)
    sql = (
        "SELECT b.id, b.left_model, b.right_model, v.winner, gl.conversation, gl.output, "
        "gr.conversation, gr.output, b.anonymous, v.tstamp, v.session_id "
        "FROM counted_votes_all v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations gl ON gl.id = b.left_generation_id "
        f"JOIN generations gr ON gr.id = b.right_generation_id {where} ORDER BY v.tstamp, v.id"
    )
    written = 0
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with atomic_text_file(out) as handle:
        handle.write("[")
        for values in db.execute(sql, params):
            handle.write(("," if written else "") + "\n" + encode(arena_row(*values)))
            written += 1
        handle.write("\n]\n")
    return ExportResult(out, written)


def arena_row(
    battle_id: int, model_a: str, model_b: str, winner: str, conv_a: str | None, out_a: str | None,
    conv_b: str | None, out_b: str | None, anonymous: int, tstamp: float, session_id: str | None,
) -> dict[str, Any]:
    """One battle in Arena's shape: the values in `ARENA_FIELDS` order (playground/arena_format.py)."""
    conversation_a, conversation_b = _arena_side(conv_a, out_a), _arena_side(conv_b, out_b)
    turn = max(1, sum(m["role"] == "user" for m in conversation_a))
    return dict(zip(ARENA_FIELDS, (str(battle_id), model_a, model_b, ARENA_WINNERS[winner], session_id or "",
                                   conversation_a, conversation_b, turn, bool(anonymous), tstamp), strict=True))


def _arena_side(conversation: str | None, output: str | None) -> list[dict[str, str]]:
    messages = parse_conversation(conversation) or []
    return messages + [{"role": "assistant", "content": output or ""}] if messages else []


# ----------------------------------------------------------------------------- leaderboard


@dataclass(frozen=True)
class LeaderboardExport(ExportResult):
    """A leaderboard file: `written` contestants, grouped by `grouping`, ranking the battles `shows`
    says; `note` explains what 'auto' grouping chose ('' when there is nothing to say)."""

    grouping: str = ""
    shows: str = ""
    note: str = ""


def export_leaderboard(db: Database, out: str | Path, options: BoardOptions | None = None, *, fmt: str | None = None,
                       families: Mapping[str, str] | None = None) -> LeaderboardExport:
    """The leaderboard as CSV, JSON or Markdown (`fmt`, or from the suffix: .csv .json .md).

    Ranked by `leaderboard.rank_votes` with the same options as `python app.py leaderboard` and the
    tab (grouping, blind battles unless `include_named`, window, both-bad, tie model, category with
    `families`, voters, rounds, seed). The JSON and Markdown files say which battles, voters and
    grouping they show.
    """
    options = options or BoardOptions()
    out = Path(out)
    fmt = fmt or LEADERBOARD_FORMATS.get(out.suffix.lower())
    render = {"csv": to_csv, "json": to_json, "markdown": to_markdown}.get(fmt or "")
    if render is None:
        raise PlaygroundError(f"cannot tell the leaderboard format of {out}: use a .csv, .json or .md file name")
    ranked = rank_votes(db, options, families)
    if ranked.board is None:
        raise RankingError(NO_BATTLES)
    board = ranked.board
    with atomic_text_file(out) as handle:
        handle.write(render(board))
    return LeaderboardExport(out, len(board.rows), grouping=board.grouping, shows=board.shows,
                             note=ranked.note.replace("**", ""))

"""Votes in the database -> a leaderboard: loading (`load`), ranking and warnings (`board`), the two
together under one set of options (`ranked`), files (`formats`) and plots (`figures`). Import from here; the modules are an implementation split."""
from playground.leaderboard.board import (Leaderboard, LeaderboardRow, battles_shown, build_leaderboard,
                                          drop_self_battles)
from playground.leaderboard.figures import (battle_count_figure, predicted_win_rate_figure, ratings_figure,
                                            short_label, win_rate_figure)
from playground.leaderboard.formats import rows_as_dicts, tie_model_text, to_csv, to_json, to_markdown
from playground.leaderboard.load import (GROUPINGS, NO_MODE, OTHER, GroupBy, category_counts, category_sql,
                                         Selection, choose_grouping, has_anonymous_votes, has_votes, load_battles,
                                         select_battles, vote_filter_sql)
from playground.leaderboard.ranked import BoardOptions, RankedVotes, rank_votes

__all__ = [
    "Leaderboard", "LeaderboardRow", "battles_shown", "build_leaderboard", "drop_self_battles", "battle_count_figure",
    "predicted_win_rate_figure", "ratings_figure", "short_label", "win_rate_figure", "rows_as_dicts",
    "tie_model_text", "to_csv", "to_json", "to_markdown", "GROUPINGS", "NO_MODE", "OTHER", "GroupBy",
    "category_counts", "category_sql", "choose_grouping", "load_battles", "vote_filter_sql", "Selection",
    "select_battles", "has_anonymous_votes", "has_votes", "BoardOptions", "RankedVotes", "rank_votes",
]

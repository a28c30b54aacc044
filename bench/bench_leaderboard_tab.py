"""The Leaderboard tab's first render with 10,000 battles (target under 2 s), against the old Refresh.

First render = what the server does when the tab is opened: `leaderboard_tab.refresh` (read the
votes, Bradley-Terry + 1,000-round bootstrap, online Elo, matrices, the ratings plot, category and
export choices), `refresh_outputs`, and the PNG encoding Gradio applies to the figure. The
baseline, measured in the same run, is the old Refresh: the same plus the three heatmaps (now
drawn when their section is opened) and every download file built eagerly (leaderboard
CSV/JSON/Markdown, DPO JSONL twice with sidecars, Arena battles JSON; now built when the user
presses a Prepare button). The browser's own drawing is not timed.
Run: python bench/bench_leaderboard_tab.py [--battles 10000] [--contestants 40]
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import timed  # noqa: E402

from bench_ranking import fill_database  # noqa: E402
from playground.ranking.synthetic import Setup, simulate  # noqa: E402
from playground.ui import leaderboard_tab as lt  # noqa: E402

TARGET_FIRST_RENDER_S = 2.0


def first_render(db_path: Path, heatmaps: bool = False) -> lt.TabView:
    """Refresh, the component updates, and the PNG bytes of every figure drawn (what Gradio sends).
    The heatmaps' section is closed on first render; they are drawn when it is opened."""
    filters = lt.BoardFilters()
    view = lt.refresh(db_path, filters, heatmaps=heatmaps)
    lt.refresh_outputs(view, filters)
    for figure in view.board.figures.values():
        if figure is not None:
            figure.savefig(io.BytesIO(), format="png")
    return view


def old_refresh(db_path: Path, out_dir: Path) -> None:
    """The baseline: every figure and every download file, as each Refresh used to build them."""
    first_render(db_path, heatmaps=True)
    lt.board_files(db_path, lt.BoardFilters(), out_dir)
    lt.export_view(db_path, lt.BoardFilters(), lt.ExportFilters(), out_dir)


def main(n_battles: int = 10_000, n_contestants: int = 40) -> dict[str, float]:
    battles = simulate(Setup(n_battles=n_battles, n_contestants=n_contestants), 0)
    battles = type(battles).from_codes(list(battles.coded.names), battles.coded.left, battles.coded.right,
                                       battles.coded.winner, 1.7e9 + battles.tstamp,
                                       [200.0] * len(battles), [180.0] * len(battles))
    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "bench.db"
        fill_database(db_path, battles)
        first_render(db_path)  # warm imports and caches: a server has them loaded
        new = timed(lambda: first_render(db_path), repeat=3)
        out = Path(folder) / "files"
        out.mkdir()
        base = timed(lambda: old_refresh(db_path, out), repeat=3)
        heat = timed(lambda: lt.heatmap_figures(new.result.board.board), repeat=1)
    view = new.result
    assert view.board.board is not None and len(view.board.board.rows) == n_contestants
    results = {"battles": n_battles, "contestants": n_contestants, "first_render_s": new.wall,
               "first_render_cpu_s": new.cpu, "old_refresh_s": base.wall, "old_refresh_cpu_s": base.cpu,
               "ratio_old_vs_new": base.wall / new.wall, "heatmaps_on_open_s": heat.wall}
    verdict = "OK" if new.wall <= TARGET_FIRST_RENDER_S else "OVER TARGET"
    print(f"{n_battles:,} battles, {n_contestants} contestants; wall (CPU), median of 3")
    print(f"  first render (refresh + outputs + ratings PNG): {new.wall:.2f} s ({new.cpu:.2f} s CPU), "
          f"target <= {TARGET_FIRST_RENDER_S} s: {verdict}")
    print(f"  old Refresh (+ 3 heatmaps + every download file): {base.wall:.2f} s ({base.cpu:.2f} s CPU): "
          f"{results['ratio_old_vs_new']:.2f}x the first render")
    print(f"  opening the heatmaps' section draws them: {heat.wall:.2f} s (+ PNG encoding)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=10_000)
    parser.add_argument("--contestants", type=int, default=40)
    options = parser.parse_args()
    main(options.battles, options.contestants)

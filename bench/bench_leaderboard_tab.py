"""The Leaderboard tab's first render with 10,000 battles (target under 2 s), against the old Refresh.

First render = what the server does when the tab is opened: `leaderboard_tab.refresh` (read the
votes, Bradley-Terry + 1,000-round bootstrap, online Elo, matrices, the ratings plot, category and
export choices), `refresh_outputs`, and the PNG encoding Gradio applies to the figure. The
baseline, measured in the same run, is the old Refresh: the same plus the three heatmaps (now
drawn when their section is opened) and every download file built eagerly (leaderboard
CSV/JSON/Markdown, DPO JSONL twice with sidecars, Arena battles JSON; now built when the user
presses a Prepare button).

Wall time is what the user waits for; CPU time is what this process spent. Both are printed:
on the shared 2-core machine a process gets a fraction of a core, so wall time there is CPU time
times the load. To show where the wall time goes the first render is split into its stages, each
with wall and CPU time (a stage whose wall/CPU ratio stands out would be waiting, e.g. on SQLite,
not computing). `served` then times the same first render through the real app: `python app.py`
on the SQLite file, the tab's `/leaderboard_refresh` endpoint called over HTTP with the tab's
defaults (Gradio's queue, JSON and the figure's PNG included), with the server's CPU time read
from /proc. The browser's own drawing is not timed.
Run: python bench/bench_leaderboard_tab.py [--battles 10000] [--contestants 40] [--no-served]
"""
from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import timed  # noqa: E402

from bench_ranking import fill_database  # noqa: E402
from playground.ranking.synthetic import Setup, simulate  # noqa: E402
from playground.ui import leaderboard_handlers as lt  # noqa: E402
from playground.ui import leaderboard_tab as tab  # noqa: E402

TARGET_FIRST_RENDER_S = 2.0


def first_render(db_path: Path, heatmaps: bool = False) -> lt.TabView:
    """Refresh, the component updates, and the PNG bytes of every figure drawn (what Gradio sends).
    The heatmaps' section is closed on first render; they are drawn when it is opened."""
    filters = lt.BoardFilters()
    view = lt.refresh(db_path, filters, heatmaps=heatmaps)
    tab.refresh_outputs(view, filters)
    for figure in view.board.figures.values():
        if figure is not None:
            figure.savefig(io.BytesIO(), format="png")
    return view


STAGES = (("playground.ui.leaderboard_tab", ("count_votes", "select_battles", "build_leaderboard", "category_counts",
                                             "contestant_options", "ratings_figure")),
          ("playground.leaderboard.load", ("choose_grouping", "load_battles")),
          ("playground.leaderboard.board", ("fit_bradley_terry", "online_elo", "position_bias")))


@contextmanager
def stage_clock(totals: dict[str, list[float]]) -> Iterator[None]:
    """Wall and CPU seconds per stage of the first render (functions wrapped while the block runs)."""
    import importlib

    saved = []
    for module_name, names in STAGES:
        module = importlib.import_module(module_name)
        for name in names:
            original = getattr(module, name)

            def clocked(*args: Any, _f=original, _name=name, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return _f(*args, **kwargs)
                finally:
                    entry = totals.setdefault(_name, [0.0, 0.0])
                    entry[0] += time.perf_counter() - wall
                    entry[1] += time.process_time() - cpu

            saved.append((module, name, original))
            setattr(module, name, clocked)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def staged_first_render(db_path: Path) -> dict[str, list[float]]:
    """One first render with every stage timed; the figure's PNG encoding is the 'png' stage."""
    totals: dict[str, list[float]] = {}
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    with stage_clock(totals):
        filters = lt.BoardFilters()
        view = lt.refresh(db_path, filters, heatmaps=False)
        tab.refresh_outputs(view, filters)
    wall, cpu = time.perf_counter(), time.process_time()
    view.board.figures["ratings"].savefig(io.BytesIO(), format="png")
    totals["png"] = [time.perf_counter() - wall, time.process_time() - cpu]
    totals["whole first render"] = [time.perf_counter() - start_wall, time.process_time() - start_cpu]
    return totals


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(db_path: Path, repeat: int = 3) -> dict[str, float]:
    """The first render through `python app.py`: `/leaderboard_refresh` with the tab's defaults."""
    from gradio_client import Client

    from tests.browser_support import AppProcess

    app = AppProcess(db_path)
    try:
        client = Client(app.url, verbose=False)
        params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/leaderboard_refresh"]
        args = [p.get("parameter_default") for p in params["parameters"]]
        out = client.predict(*args, api_name="/leaderboard_refresh")  # warm: imports, first figure
        assert "Ranked" in out[0], out[0]
        walls, cpus = [], []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), _process_cpu(app.proc.pid)
            client.predict(*args, api_name="/leaderboard_refresh")
            walls.append(time.perf_counter() - wall)
            cpus.append(_process_cpu(app.proc.pid) - cpu)
        client.close()
    finally:
        app.close()
    return {"served_s": statistics.median(walls), "served_server_cpu_s": statistics.median(cpus)}


def old_refresh(db_path: Path, out_dir: Path) -> None:
    """The baseline: every figure and every download file, as each Refresh used to build them."""
    first_render(db_path, heatmaps=True)
    lt.board_files(db_path, lt.BoardFilters(), out_dir)
    lt.export_view(db_path, lt.BoardFilters(), lt.ExportFilters(), out_dir)


def main(n_battles: int = 10_000, n_contestants: int = 40, with_served: bool = True) -> dict[str, float]:
    battles = simulate(Setup(n_battles=n_battles, n_contestants=n_contestants), 0)
    battles = type(battles).from_codes(list(battles.coded.names), battles.coded.left, battles.coded.right,
                                       battles.coded.winner, 1.7e9 + battles.tstamp,
                                       [200.0] * len(battles), [180.0] * len(battles))
    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "bench.db"
        fill_database(db_path, battles)
        first_render(db_path)  # warm imports and caches: a server has them loaded
        new = timed(lambda: first_render(db_path), repeat=3)
        gc.collect()  # before the baseline's figures pile up: collecting them would be charged to the stages
        stages = staged_first_render(db_path)
        out = Path(folder) / "files"
        out.mkdir()
        base = timed(lambda: old_refresh(db_path, out), repeat=3)
        heat = timed(lambda: lt.heatmap_figures(new.result.board.board), repeat=1)
        through_app = served(db_path) if with_served else {}
    view = new.result
    assert view.board.board is not None and len(view.board.board.rows) == n_contestants
    results = {"battles": n_battles, "contestants": n_contestants, "first_render_s": new.wall,
               "first_render_cpu_s": new.cpu, "old_refresh_s": base.wall, "old_refresh_cpu_s": base.cpu,
               "ratio_old_vs_new": base.wall / new.wall, "heatmaps_on_open_s": heat.wall}
    results.update(through_app)
    results["load_average_1min"] = os.getloadavg()[0]
    verdict = "OK" if new.wall <= TARGET_FIRST_RENDER_S else "OVER TARGET"
    cpu_verdict = "OK" if new.cpu <= TARGET_FIRST_RENDER_S else "OVER TARGET"
    print(f"{n_battles:,} battles, {n_contestants} contestants; wall (CPU), median of 3; load average "
          f"{results['load_average_1min']:.1f} on {os.cpu_count()} cores")
    print(f"  first render (refresh + outputs + ratings PNG): {new.wall:.2f} s wall, {new.cpu:.2f} s CPU; "
          f"target <= {TARGET_FIRST_RENDER_S} s wall: {verdict} (CPU alone: {cpu_verdict})")
    if through_app:
        print(f"  the same through `python app.py` (/leaderboard_refresh over HTTP, queue, JSON, PNG): "
              f"{through_app['served_s']:.2f} s wall, {through_app['served_server_cpu_s']:.2f} s server CPU; "
              f"target <= {TARGET_FIRST_RENDER_S} s wall: "
              f"{'OK' if through_app['served_s'] <= TARGET_FIRST_RENDER_S else 'OVER TARGET'}")
    total_wall = stages["whole first render"][0]
    print("  where the first render's time goes (one run; wall / CPU seconds, wall/CPU ratio; nested: "
          "choose_grouping and load_battles inside select_battles, fit_bradley_terry, online_elo and position_bias "
          "inside build_leaderboard):")
    for name, (wall, cpu) in sorted(stages.items(), key=lambda item: -item[1][0]):
        if wall >= 0.005:
            print(f"    {name:20s} {wall:6.3f} / {cpu:6.3f}  x{wall / max(cpu, 1e-9):4.1f}  "
                  f"({100 * wall / total_wall:5.1f}% of the whole)")
        results[f"stage_{name}_s"] = wall
        results[f"stage_{name}_cpu_s"] = cpu
    print(f"  old Refresh (+ 3 heatmaps + every download file): {base.wall:.2f} s ({base.cpu:.2f} s CPU): "
          f"{results['ratio_old_vs_new']:.2f}x the first render")
    print(f"  opening the heatmaps' section draws them: {heat.wall:.2f} s (+ PNG encoding)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=10_000)
    parser.add_argument("--contestants", type=int, default=40)
    parser.add_argument("--no-served", action="store_true", help="skip the run through `python app.py`")
    options = parser.parse_args()
    main(options.battles, options.contestants, not options.no_served)

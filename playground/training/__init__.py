"""Training on the stored votes: DPO or KTO (TRL's DPOTrainer / KTOTrainer, LoRA by default) into a catalog model.

data.py turns votes into a split preference set, scoring.py measures held-out preference
accuracy before and after, card.py writes and reads the model card, dpo.py runs it all (both objectives).
"""
from playground.training.dpo import DPOHyperparameters, TrainCancelled, TrainRequest, TrainResult, train_dpo

__all__ = ["DPOHyperparameters", "TrainCancelled", "TrainRequest", "TrainResult", "train_dpo"]

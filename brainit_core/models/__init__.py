"""Brain-IT models: image-to-fMRI encoder, V2C map, Brain Tokenizer, Cross-Transformer, BIT, runs.

The BIT side (this package's ``tokenizer``, ``transformer``, ``bit``, ``training``, ``transfer``,
``run``) is imported here; ``encoder`` and ``v2c`` are imported where they are used.
"""
from brainit_core.models.bit import BITConfig, BITOutput, BITPrediction, BrainIT, BrainITModel
from brainit_core.models.run import BrainITRun
from brainit_core.models.tokenizer import BrainTokenizer
from brainit_core.models.training import train_run
from brainit_core.models.transfer import transfer_subject, transfer_trials
from brainit_core.models.transformer import CrossTransformer

__all__ = ["BITConfig", "BITOutput", "BITPrediction", "BrainIT", "BrainITModel", "BrainITRun", "BrainTokenizer",
           "CrossTransformer", "train_run", "transfer_subject", "transfer_trials"]

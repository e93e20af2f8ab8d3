"""Brain-IT models: image-to-fMRI encoder, V2C map, Brain Tokenizer, Cross-Transformer, BIT, runs."""
from brainit_core.models.bit import BITConfig, BITOutput, BITPrediction, BrainIT, BrainITModel
from brainit_core.models.encoder import EncoderConfig, ImageToFMRIEncoder, evaluate_encoder, load_encoder, predict_fmri
from brainit_core.models.encoder_training import train_encoder
from brainit_core.models.run import BrainITRun
from brainit_core.models.tokenizer import BrainTokenizer
from brainit_core.models.training import train_run
from brainit_core.models.transfer import transfer_subject, transfer_trials
from brainit_core.models.transformer import CrossTransformer
from brainit_core.models.v2c import V2C

__all__ = ["BITConfig", "BITOutput", "BITPrediction", "BrainIT", "BrainITModel", "BrainITRun", "BrainTokenizer",
           "CrossTransformer", "EncoderConfig", "ImageToFMRIEncoder", "V2C", "evaluate_encoder", "load_encoder",
           "predict_fmri", "train_encoder", "train_run", "transfer_subject", "transfer_trials"]

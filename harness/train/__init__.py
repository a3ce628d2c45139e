"""Training: SFT data from traces, LoRA training with peft, adapter conversion for llama.cpp."""

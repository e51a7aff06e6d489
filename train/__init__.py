"""Fine-tuning on the agent's traces: SFT data (`data`), training (`sft`), merging LoRA adapters
(`merge`) and a tiny locally built model for smoke tests (`tiny`).

Needs the `train` extra (torch, transformers, peft, trl, datasets, accelerate). See README.md.
"""

"""Save a randomly initialised model of SemCoder's shape (deepseek-coder-6.7b: llama, 32 layers,
hidden 4096) with the tiny tokenizer, to time LoRA steps at full size without downloading weights.

    python benchmarks/semcoder_shape.py TINY_BASE_DIR OUT_DIR     (see benchmarks/train_gpu.sh)

SHAPE_LAYERS and SHAPE_HIDDEN shrink it, for a check of the script on a CPU."""

import os
import sys

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

tiny, out = sys.argv[1], sys.argv[2]
layers = int(os.environ.get("SHAPE_LAYERS", "32"))
hidden = int(os.environ.get("SHAPE_HIDDEN", "4096"))
tok = AutoTokenizer.from_pretrained(tiny)
config = LlamaConfig(vocab_size=32256, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                     num_hidden_layers=layers, num_attention_heads=hidden // 128, num_key_value_heads=hidden // 128,
                     max_position_embeddings=16384, rope_theta=100000.0, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.set_default_dtype(torch.bfloat16)
with torch.device(device):
    model = LlamaForCausalLM(config)
print(f"{sum(p.numel() for p in model.parameters())/1e9:.2f}B parameters", flush=True)
model.save_pretrained(out)
tok.save_pretrained(out)

"""Model directories without weights for ``load_format=dummy``: Qwen2.5-Coder 0.5B and 7B shapes.

The tokenizer (and chat template) comes from the packaged offline GGUF, the shapes from the public
configs of Qwen2.5-Coder-0.5B/7B-Instruct. Needs transformers + gguf (``.venv-vllm`` has both).
"""

import json
import sys
from pathlib import Path

from transformers import AutoTokenizer

from autotqa.serving.model_store import ensure_packaged

BASE = {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151645, "hidden_act": "silu", "initializer_range": 0.02,
        "max_position_embeddings": 32768, "model_type": "qwen2", "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 131072, "torch_dtype": "bfloat16",
        "use_cache": True, "use_sliding_window": False}
SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, max_window_layers=24, num_attention_heads=14,
                 num_hidden_layers=24, num_key_value_heads=2, tie_word_embeddings=True, vocab_size=151936),
    "7b": dict(hidden_size=3584, intermediate_size=18944, max_window_layers=28, num_attention_heads=28,
               num_hidden_layers=28, num_key_value_heads=4, tie_word_embeddings=False, vocab_size=152064),
}

if __name__ == "__main__":
    out = Path(sys.argv[1])
    gguf = ensure_packaged()  # the cached, sha256-verified file
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    for size, shape in SHAPES.items():
        d = out / f"qwen2.5-coder-{size}-instruct-arch"
        d.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(d)
        (d / "config.json").write_text(json.dumps({**BASE, **shape}, indent=2))
        print(d)

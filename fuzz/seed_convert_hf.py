#!/usr/bin/env python3
"""seed_convert_hf.py DIR — writes DIR/tiny, a seed for fuzz_convert_hf: the
four NUL-separated parts of a consistent Hugging Face Llama checkpoint
(config.json, safetensors header, tokenizer.json, tokenizer_config.json)
with 1 layer, n_embd 4, 2 heads, 1 KV head, n_ff 4 and an 8-token byte-level
BPE vocabulary whose pre-tokenizer is Llama 3's (taken from
$PSI_TEST_DATA/reference/hf/llama3-micro-hf/tokenizer.json). The tensor data
is the zeros the harness appends."""
import json
import os
import sys

data = os.environ.get("PSI_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
micro = json.load(open(os.path.join(data, "reference", "hf", "llama3-micro-hf", "tokenizer.json")))
E, F, H, KV, HD, V = 4, 4, 2, 1, 2, 8
config = {"model_type": "llama", "hidden_size": E, "intermediate_size": F, "num_hidden_layers": 1,
          "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HD, "vocab_size": V,
          "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
          "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 32}}
shapes = [("model.embed_tokens.weight", [V, E]), ("model.norm.weight", [E])]
for name, shape in [("input_layernorm", [E]), ("self_attn.q_proj", [H * HD, E]), ("self_attn.k_proj", [KV * HD, E]),
                    ("self_attn.v_proj", [KV * HD, E]), ("self_attn.o_proj", [E, H * HD]),
                    ("post_attention_layernorm", [E]), ("mlp.gate_proj", [F, E]), ("mlp.up_proj", [F, E]),
                    ("mlp.down_proj", [E, F])]:
    shapes.append(("model.layers.0.%s.weight" % name, shape))
header, off = {}, 0
for name, shape in shapes:
    n = 4
    for d in shape:
        n *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
    off += n
tok = {"added_tokens": [{"id": 6, "content": "<|begin_of_text|>", "special": True},
                        {"id": 7, "content": "<|end_of_text|>", "special": True}],
       "pre_tokenizer": micro["pre_tokenizer"], "post_processor": micro.get("post_processor"),
       "model": {"type": "BPE", "byte_fallback": False, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5},
                 "merges": ["a b", ["ab", "c"]]}}
tok_cfg = {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>"}, "add_bos_token": True,
           "chat_template": "{{ bos_token }}"}
parts = [json.dumps(config), json.dumps(header), json.dumps(tok), json.dumps(tok_cfg)]
os.makedirs(sys.argv[1], exist_ok=True)
with open(os.path.join(sys.argv[1], "tiny"), "wb") as f:
    f.write(b"\0".join(p.encode() for p in parts))

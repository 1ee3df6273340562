"""Offline weight optimization of the embedded LM: training pairs from the program's own prompts
(`pairs`), LoRA training on the CPU (`train`), and llama.cpp GGUF adapters (`gguf_lora`).
The optimizer that ties them together is `workbench/optimize/finetune.py`."""

"""Converters from other projects' PKM checkpoints to a format 2 model directory.

    /usr/bin/python3 -m training.convert {xlm|lingua|lucidrains} SRC --out DIR [--tokenizer FILE] [...]

One module per source project (xlm.py, lingua.py, lucidrains.py), each turning the source's
state_dict and hyper-parameters into a config.Config and a dict of tensors under format 2
names; common.py holds what they share (refusals, key handling, the BatchNorm fold, the RoPE
permutation) and writer.py writes the directory through training/export.py.
docs/converting.md says what maps to what and what is refused.
"""

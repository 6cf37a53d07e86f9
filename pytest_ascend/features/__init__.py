"""Inference features done for real on the model's own KV cache: prefix caching, speculative
decoding, and the prefill/decode split. Nothing here knows pytest."""

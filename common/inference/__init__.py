"""Model clients both flows use: embedders, answer generators and their shared retry policy.

`embeddings` and `generation` each define a protocol and the one factory that picks an
implementation (`embedders/`, `generators/`) from settings; `retry` is the 429/5xx policy of the
cloud clients. May import `platform` only.
"""

"""Offline recommendation package: the evaluation data adapter, candidate recalls and the SASRec evaluation protocol.

Nothing here is served yet; `make eval` (`python -m ml eval`) measures the recalls on the Amazon Video Games
sequences (research and evaluation data only: read from NEXUSCART_EVAL_DATA, never copied into the repository).
"""

"""The recommendation pipeline, offline and served.

- Candidate recalls (`recalls.py`: popularity, transitions, co-occurrence, a tuned blend; `lightfm_recall.py`:
  LightFM WARP hybrid) and a learned ranker (`ranker.py`, LightGBM); `pipeline.py` names the one that is served.
- Evaluation with SASRec's protocol (`evaluation.py`; `make eval` on the Amazon Video Games sequences, research
  data only: read from NEXUSCART_EVAL_DATA, never copied into the repository).
- Serving and its life cycle: `serving.py` (the model the recommendations subgraph loads), `train.py` (training
  from the platform's interactions, with offline metrics), `registry.py` (versioned artifacts, promote, rollback),
  `demo.py` (simulated shoppers for `make run`), `commands.py` (`python -m ml train|models|promote|rollback`).
"""

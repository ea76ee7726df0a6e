"""`make bench`: throughput and p50/p99 latency of the platform's hot paths (not tests: timings are reported,
never asserted). `python -m bench --help` lists the options; run.py boots the platform and runs the scenarios."""

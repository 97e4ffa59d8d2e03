"""Benchmarks behind the labs' "Scale it up" figures; `python -m bench` runs them and records results."""

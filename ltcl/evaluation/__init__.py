"""Evaluation: protocols (kNN, linear probes, few-shot), results.json, reports and ltcl-eval."""

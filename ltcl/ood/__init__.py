"""Stage 1's OOD sampling: rounds, strategies (kl_cluster, colt, random), clustering, budgets."""

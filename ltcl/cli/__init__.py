"""The console commands: ltcl-train, ltcl-pipeline, ltcl-eval and ltcl-report (the top layer)."""

"""The run machinery under the console commands: a run's identity and record, the objective a
sweep reads, checkpoint writing and resuming, loggers, launcher and config checks."""

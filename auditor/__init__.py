"""refuseu.auditor: suites, backends, judges, runner, store, scoring, gates, report and CLI."""

__version__ = "0.1.0"

"""From the store to every number and page: scoring, statistics, gates, comparisons, the HTML report and
the CI outputs. ``summarize`` is the one source of every figure."""

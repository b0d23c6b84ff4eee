"""refuseu.remediation: turn an audit's failures into DPO preference pairs, train, and verify the fix."""

"""Evaluations of the served model itself, apart from repairs: `reasoning` (execution reasoning,
CRUXEval's two tasks on a repository's own functions, scored by running them)."""

"""Human approval of hard_ask commands (Shield level 5): storage, workflow, notifiers."""

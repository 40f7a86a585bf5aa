"""Service-level targets: the policy, business-hours clocks, due times, warnings, breaches."""

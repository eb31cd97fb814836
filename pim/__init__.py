"""Just-in-time privileged access to groups, on Temporal."""

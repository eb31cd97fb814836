"""The domain: the wire contract's models, policy, the activation and assignment
rules, authorization rules, durations and statuses. Pure: no I/O, no Temporal
client, no store. Workflows and activities both build on it."""

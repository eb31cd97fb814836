"""Notifications: the message model, who is told of what (audience), what a
message says (messages), how it is composed from an event (compose), the
channels that carry it and the dispatcher that drains the store's outbox."""

"""The HTTP API (`pim api`): Microsoft Graph's PIM for Groups resources and native
endpoints, for people and services authenticated by the company's issuer."""

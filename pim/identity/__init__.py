"""Who someone is and what they proved: TOTP enrolment and codes (sealed before
they enter Temporal), OIDC step-up tokens from the company's identity provider."""

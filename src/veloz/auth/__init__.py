"""Who may call the API: users and their passwords, API keys, JWT access tokens with
revocable refresh tokens, roles, login lockout and request rate limits. Transport-neutral:
the API's security middleware and the `veloz keys|users` commands both use it."""

"""The use cases that span domains: sign-up (API and bot), login, erasure."""

"""Accounts: people and businesses, each identified by an E.164 phone number."""

"""The business platform's provisioning: businesses (WABAs), apps, phone numbers, tokens, and
the messages a business sends and receives through its API device."""
